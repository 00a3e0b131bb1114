"""Failure classes of the trainer, each with its exit code and reason string.

Hierarchy (retryable: the operator may run the attempt again unchanged)::

    TrainerError (exit 1, InternalError, retryable)
    ├── InvalidConfigError (exit 2, InvalidConfig)
    ├── InvalidDataError (exit 3, InvalidData)
    ├── ModelLoadError (exit 4, ModelLoadFailed, retryable)
    │   └── ModelNotFoundError (exit 7, ModelNotFound)
    ├── OutOfMemoryError (exit 5, OutOfMemory)
    └── StorageError (exit 6, StorageFailed, retryable)

The operator reads the reason and exit code from the termination message, so both are part of
the contract and never change meaning. The exit codes of the classes that are not `retryable`
are the operator's `PERMANENT_EXIT_CODES` (a contract test holds the two together; the operator
cannot import the trainer).
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "OOM_HINT",
    "InvalidConfigError",
    "InvalidDataError",
    "ModelLoadError",
    "ModelNotFoundError",
    "OutOfMemoryError",
    "StorageError",
    "TrainerError",
]

OOM_HINT = (
    "lower `training.batchSize` (raise `training.gradientAccumulationSteps` to keep the "
    "effective batch), set `training.gradientCheckpointing: true`, lower "
    "`training.maxSequenceLength`, or use `method.type: qlora`"
)


class TrainerError(Exception):
    """An error that ends the run with a known exit code and reason."""

    exit_code: ClassVar[int] = 1
    reason: ClassVar[str] = "InternalError"
    #: Whether running the same attempt again can succeed (a retry cannot fix a bad config).
    retryable: ClassVar[bool] = True


class InvalidConfigError(TrainerError):
    """The training config is malformed or asks for an impossible combination."""

    exit_code = 2
    reason = "InvalidConfig"
    retryable = False


class InvalidDataError(TrainerError):
    """The dataset failed validation before any training step."""

    exit_code = 3
    reason = "InvalidData"
    retryable = False


class ModelLoadError(TrainerError):
    """The base model, a warm-start adapter or the champion could not be loaded."""

    exit_code = 4
    reason = "ModelLoadFailed"


class ModelNotFoundError(ModelLoadError):
    """The model is not where the spec says: a missing local path, or a Hub repository or
    revision that does not exist (or these credentials cannot see). A retry cannot help;
    a failed download (network, throttling) stays a `ModelLoadError`, which is retried."""

    exit_code = 7
    reason = "ModelNotFound"
    retryable = False


class OutOfMemoryError(TrainerError):
    """The accelerator or host ran out of memory."""

    exit_code = 5
    reason = "OutOfMemory"
    retryable = False


class StorageError(TrainerError):
    """Artifacts or checkpoints could not be read from or written to storage."""

    exit_code = 6
    reason = "StorageFailed"
