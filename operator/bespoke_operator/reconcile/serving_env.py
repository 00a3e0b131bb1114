"""Maps the serving and monitoring spec to the serving process's environment variables."""

from __future__ import annotations

from bespoke_operator.api import ModelCustomizationSpec

__all__ = ["serving_env"]


def serving_env(
    spec: ModelCustomizationSpec,
    *,
    version: int,
    artifact_uri: str,
    namespace: str,
    customization: str,
) -> dict[str, str]:
    """The `BESPOKE_*` variables `bespoke_serving.settings` reads, for one served version."""
    serving, monitoring = spec.serving, spec.monitoring
    return {
        "BESPOKE_MODEL_URI": artifact_uri,
        "BESPOKE_VERSION": str(version),
        "BESPOKE_NAMESPACE": namespace,
        "BESPOKE_CUSTOMIZATION": customization,
        "BESPOKE_MERGE_ADAPTER": str(serving.merge_adapter).lower(),
        "BESPOKE_BATCHING": serving.batching.mode,
        "BESPOKE_MAX_BATCH_SIZE": str(serving.batching.max_batch_size),
        "BESPOKE_MAX_LATENCY_MS": str(serving.batching.max_latency_ms),
        "BESPOKE_MAX_TEXTS_PER_REQUEST": str(serving.limits.max_texts_per_request),
        "BESPOKE_MAX_CHARACTERS_PER_TEXT": str(serving.limits.max_characters_per_text),
        "BESPOKE_MAX_NEW_TOKENS": str(serving.limits.max_new_tokens),
        "BESPOKE_MAX_REQUEST_BYTES": str(serving.limits.max_request_bytes),
        "BESPOKE_CAPTURE_WINDOW_SIZE": str(monitoring.window_size),
        # The monitor waits for this many rows; never more than the window can hold.
        "BESPOKE_DRIFT_MIN_ROWS": str(min(monitoring.window_size, 100)),
        "BESPOKE_DRIFT_ENABLED": str(monitoring.enabled).lower(),
        "BESPOKE_DRIFT_INTERVAL_SECONDS": str(monitoring.interval_seconds),
        "BESPOKE_DRIFT_METHOD": monitoring.method,
        "BESPOKE_DRIFT_THRESHOLD": monitoring.threshold,
    }
