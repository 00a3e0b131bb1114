"""Why a request cannot be answered now (kept apart from the runtime so the service loads light)."""

from __future__ import annotations

__all__ = ["NotReadyError", "OverloadedError", "WrongTaskError"]


class NotReadyError(RuntimeError):
    """The model is still loading (or failed to load)."""


class WrongTaskError(RuntimeError):
    """The request is for the other task than the version serves."""


class OverloadedError(RuntimeError):
    """More work is queued than the service takes on: the client should retry later (503)."""
