"""The `bespoke` command: validate resource files and generate the CRDs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from bespoke_operator import manifests
from bespoke_operator.validate import ResourceValidationError, load_file

__all__ = ["app", "main"]

app = typer.Typer(
    name="bespoke",
    help="Bespoke: take a pre-trained model to a gated, served, monitored customized model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


@app.command()
def validate(
    files: Annotated[
        list[Path], typer.Argument(help="Resource files (YAML) to check.", show_default=False)
    ],
) -> None:
    """Check ModelCustomization / ModelVersion files; report every problem with its field path."""
    failed = 0
    for path in files:
        try:
            resources = load_file(path)
        except ResourceValidationError as exc:
            failed += 1
            for problem in exc.problems:
                _out.print(str(problem), markup=False)
            continue
        names = ", ".join(f"{r.kind}/{r.metadata.name}" for r in resources)
        _out.print(f"{path}: ok ({names})", markup=False)
    if failed:
        _err.print(f"{failed} of {len(files)} file(s) invalid", markup=False)
        raise typer.Exit(code=1)


@app.command()
def crds(
    root: Annotated[
        Path, typer.Option(help="Repository root to write crds/, the chart copy and docs/ under.")
    ] = Path("."),
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 if a generated file is stale.")
    ] = False,
) -> None:
    """Generate the CRDs and the API reference from the API models."""
    if check:
        outdated = manifests.stale(root)
        for path in outdated:
            _out.print(f"{path}: differs from the API models — run `make manifests`", markup=False)
        if outdated:
            raise typer.Exit(code=1)
        _out.print("Generated files are current", markup=False)
        return
    changed = manifests.write_all(root)
    for path in changed:
        _out.print(f"Wrote {path}", markup=False)
    if not changed:
        _out.print("Generated files are current", markup=False)


def main() -> None:
    """Console-script entry point."""
    app()
