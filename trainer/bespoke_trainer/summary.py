"""The short JSON summary the operator reads from the pod's termination message."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

__all__ = ["MAX_BYTES", "encode", "failure_summary", "success_summary", "write_summary"]

log = logging.getLogger(__name__)

# Kubernetes keeps at most 4096 bytes of a termination message.
MAX_BYTES = 4000


def success_summary(
    *,
    version: int,
    metrics: dict[str, float],
    champion: dict[str, float] | None,
    fairness: dict[str, float] | None,
    artifact_uri: str,
    fingerprint: str,
    message: str,
) -> dict[str, Any]:
    """The summary of a finished run."""
    return {
        "outcome": "Succeeded",
        "version": version,
        "metrics": metrics,
        "championMetrics": champion,
        "fairness": fairness,
        "artifactUri": artifact_uri,
        "dataFingerprint": fingerprint,
        "reason": None,
        "message": message,
        "exitCode": 0,
    }


def failure_summary(
    *, version: int | None, reason: str, message: str, exit_code: int, artifact_uri: str | None
) -> dict[str, Any]:
    """The summary of a failed run."""
    return {
        "outcome": "Failed",
        "version": version,
        "metrics": {},
        "championMetrics": None,
        "fairness": None,
        "artifactUri": artifact_uri,
        "dataFingerprint": None,
        "reason": reason,
        "message": message,
        "exitCode": exit_code,
    }


def encode(summary: dict[str, Any]) -> str:
    """Compact JSON under `MAX_BYTES`, shortening the message first if needed."""
    text = json.dumps(summary, separators=(",", ":"), default=float)
    if len(text.encode()) <= MAX_BYTES:
        return text
    over = len(text.encode()) - MAX_BYTES
    message = str(summary.get("message", ""))
    shortened = {**summary, "message": message[: max(0, len(message) - over - 3)] + "..."}
    text = json.dumps(shortened, separators=(",", ":"), default=float)
    if len(text.encode()) > MAX_BYTES:
        # Per-metric detail lives in metrics.json; the summary must still parse.
        shortened = {**shortened, "championMetrics": None, "fairness": None}
        text = json.dumps(shortened, separators=(",", ":"), default=float)
    return text


def write_summary(path: str, summary: dict[str, Any]) -> None:
    """Write the summary; a failure to write is logged, never fatal."""
    text = encode(summary)
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        log.warning("Cannot write the summary to %s: %s", path, exc)
    log.info("Summary: %s", text)
