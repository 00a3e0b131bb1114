"""Failure classes of the operator and of `bespoke`, one tree.

Hierarchy::

    BespokeError
    ├── ApiError                  a Kubernetes API call failed (status, reason, path,
    │                             Retry-After); `retryable` for 409, 429 and 5xx
    ├── ResourceValidationError   a file holds resources the API server would refuse
    │                             (`problems`: every one, with its field path)
    └── LocalRunError             `bespoke run` and friends cannot go on; the message says why
        ├── MissingLocationError  a local model or data location does not exist
        ├── UpdateRefusedError    the file changes what a customization cannot change
        ├── StateUnreadableError  a file of the state directory cannot be read back
        └── RunFailedError        the file cannot be run (message formatted for the terminal)

On a cluster, `ApiError` is mapped at the controller: retryable ones are retried with backoff,
the others are written into status as `Stalled`/`ApiRequestFailed`. An invalid spec is not an
exception: the core's answer is a `Stalled`/`InvalidSpec` status. The trainer's own tree
(`bespoke_trainer.errors`) reaches the operator as exit codes and reasons, not as exceptions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bespoke_operator.api.rules import RuleViolation
    from bespoke_operator.cli.validate import Problem

__all__ = [
    "ApiError",
    "BespokeError",
    "LocalRunError",
    "MissingLocationError",
    "ResourceValidationError",
    "RunFailedError",
    "StateUnreadableError",
    "UpdateRefusedError",
]


class BespokeError(Exception):
    """Every failure the operator and `bespoke` raise on purpose."""


class ApiError(BespokeError):
    """An API call failed; `status` is the HTTP status (409 conflict, 403 forbidden, ...).

    `retry_after`: the seconds the server asked the client to wait (`Retry-After` of a 429 or a
    503), when it said.
    """

    def __init__(
        self, status: int, reason: str, path: str, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{status} {reason} on {path}")
        self.status = status
        self.reason = reason
        self.path = path
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        """Conflicts, throttling and server errors heal on their own; the rest need a person."""
        return self.status in (409, 429) or self.status >= 500


class ResourceValidationError(BespokeError):
    """A file holds invalid resources; `problems` lists every one of them."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = list(problems)


class LocalRunError(BespokeError):
    """A local command (`bespoke run`, `rollback`, ...) cannot go on; the message says why."""


class MissingLocationError(LocalRunError):
    """A local model or data location of the customization does not exist."""


class UpdateRefusedError(LocalRunError):
    """The file changes what an existing customization cannot change; nothing was stored.

    The same transition rules (and messages) as the CRD's, which the API server enforces on an
    update; `violations` have field paths relative to `spec`.
    """

    def __init__(self, violations: list[RuleViolation]) -> None:
        self.violations = violations
        super().__init__("; ".join(f"spec{v.field_path}: {v.message}" for v in violations))


class StateUnreadableError(LocalRunError):
    """A file of the state directory cannot be read back (edited by hand, truncated, a folder)."""

    def __init__(self, path: Path, error: Exception, state_dir: Path) -> None:
        self.path = path
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        super().__init__(
            f"{path} cannot be read ({reason}): restore it, or move {state_dir} aside to start over"
        )


class RunFailedError(LocalRunError):
    """The file cannot be run; the message says why (already formatted for the terminal)."""
