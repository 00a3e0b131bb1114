"""Command line entry point: `python -m bespoke_trainer --config PATH` (or `bespoke-train`)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from bespoke_trainer.config import TrainerConfig, load_config
from bespoke_trainer.errors import OOM_HINT, OutOfMemoryError, TrainerError
from bespoke_trainer.summary import failure_summary, write_summary

__all__ = ["main"]

log = logging.getLogger("bespoke_trainer")

_CPU_OOM = ("can't allocate memory", "not enough memory", "out of memory")


def _is_oom(exc: BaseException) -> bool:
    import torch  # late: a config error should not pay for importing torch

    if isinstance(exc, torch.cuda.OutOfMemoryError | MemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(s in str(exc).lower() for s in _CPU_OOM)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one training job and return its exit code."""
    parser = argparse.ArgumentParser(prog="bespoke-train", description=__doc__)
    parser.add_argument("--config", required=True, help="path to the JSON training config")
    parser.add_argument(
        "--termination-log",
        default=None,
        help="where the JSON summary goes (default: the config's output.terminationLogPath)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stdout,
        force=True,
    )
    config: TrainerConfig | None = None
    summary_path = args.termination_log or "/dev/termination-log"
    try:
        config = load_config(args.config)
        summary_path = args.termination_log or config.output.termination_log_path
        # Heavy imports (torch, transformers) only once the config is known to be valid.
        from transformers.utils import logging as hf_logging

        from bespoke_trainer.recipe import run

        # Progress bars garble `kubectl logs`; our own progress lines replace them.
        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

        summary = run(config)
        if summary:
            write_summary(summary_path, summary)
        return 0
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        error = _classify(exc)
        if error.reason == "InternalError":
            log.exception("Training failed: %s", error)
        else:
            log.error("Training failed (%s): %s", error.reason, error)
        write_summary(
            summary_path,
            failure_summary(
                version=config.version if config else None,
                reason=error.reason,
                message=str(error),
                exit_code=error.exit_code,
                artifact_uri=config.output.uri if config else None,
            ),
        )
        return error.exit_code


def _classify(exc: BaseException) -> TrainerError:
    if isinstance(exc, TrainerError):
        return exc
    if _is_oom(exc):
        return OutOfMemoryError(f"out of memory: {str(exc).splitlines()[0][:200]}; {OOM_HINT}")
    return TrainerError(f"{type(exc).__name__}: {str(exc)[:500]}")


if __name__ == "__main__":
    sys.exit(main())
