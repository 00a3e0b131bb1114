"""The `bespoke` command: validate, manifests, run a customization locally, replay traffic."""

from bespoke_operator.cli.commands import app, main

__all__ = ["app", "main"]
