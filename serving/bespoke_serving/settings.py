"""Typed serving settings read from environment variables (the operator's Deployment sets them).

- `BESPOKE_MODEL_URI` (required): the version directory `<storage>/versions/vN`, as `file:///abs`,
  a plain path, `pvc://claim/path` or `s3://bucket/prefix`.
- `BESPOKE_VERSION`: the version number N, checked against `bespoke-version.json`.
- `BESPOKE_BASE_MODEL_URI`: overrides the base model location recorded in the version.
- `BESPOKE_NAMESPACE`, `BESPOKE_CUSTOMIZATION`: metric labels (`default`, `local`).
- `BESPOKE_MERGE_ADAPTER`: merge the LoRA adapter into the base weights at load (`false`).
- `BESPOKE_BATCHING`: how `/classify` requests are batched: `greedy` (default; whatever queued
  while the model was busy, never waiting for a batch to fill, see `bespoke_serving.batching`) or
  `adaptive` (BentoML's adaptive batching).
- `BESPOKE_MAX_BATCH_SIZE` (32): texts per model call; `BESPOKE_MAX_LATENCY_MS` (100): the
  longest BentoML's adaptive batching lets a request wait (`adaptive` only).
- `BESPOKE_MAX_TEXTS_PER_REQUEST` (64), `BESPOKE_MAX_CHARACTERS_PER_TEXT` (4000),
  `BESPOKE_MAX_NEW_TOKENS` (256), `BESPOKE_MAX_REQUEST_BYTES` (1048576): request limits.
- Overload: `BESPOKE_MAX_CONCURRENT_REQUESTS` (64) `/classify` and `/generate` requests in the
  service at once; `BESPOKE_MAX_QUEUED_TEXTS` (1024) texts waiting for the model (greedy
  batching); beyond either, a request is answered 503 at once with `Retry-After:
  BESPOKE_RETRY_AFTER_SECONDS` (1) instead of queueing until the pod runs out of memory
  (counted: `bespoke_requests_shed_total`). `BESPOKE_CAPTURE_QUEUE_SIZE` (10000): captured
  records waiting to be written; beyond it new records are dropped (counted:
  `bespoke_capture_dropped_total`), never the request.
- `BESPOKE_CAPTURE_WINDOW_SIZE`: rows kept in memory for drift, monitoring.windowSize (1000).
- `BESPOKE_CAPTURE_URI`: directory (path, `file://`, `pvc://`) for captured JSONL; unset = off.
- `BESPOKE_CAPTURE_MAX_BYTES` (64 MiB), `BESPOKE_CAPTURE_MAX_FILES` (10): JSONL rotation.
- `BESPOKE_DRIFT_ENABLED` (`true`), `BESPOKE_DRIFT_INTERVAL_SECONDS` (300),
  `BESPOKE_DRIFT_METHOD` (`auto`|`psi`|`ks`|`wasserstein`|`jensenshannon`),
  `BESPOKE_DRIFT_THRESHOLD` (drifted-feature share, 0.5), `BESPOKE_DRIFT_MIN_ROWS` (100),
  `BESPOKE_DRIFT_ISOLATED` (`true`: compute in a child process, off the serving GIL).
- `BESPOKE_DRIFT_EMBEDDINGS` (`false`): also test the model's mean-pooled embeddings of the
  window against the reference's (text classification only): one more feature, `embeddings`.
  Costs the reference's embeddings at start-up and a little memory per captured row.
- `BESPOKE_ACCESS_LOG` (`false`): BentoML's per-request access log lines. Off by default: they
  cost a fifth of the request path's CPU (measured), and `/metrics` has request counts and
  latencies.
- `BESPOKE_PVC_ROOT`: where `pvc://claim/...` volumes are mounted (`/mnt/pvc`).
- `BESPOKE_TORCH_THREADS`: torch intra-op threads, 0 = torch's default (0). On a CPU shared
  with other busy processes, 1 is much faster than more (oversubscribed OpenMP threads wait on
  each other at every barrier; see `benchmarks/README.md`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bespoke_monitor import DriftMethod
from bespoke_serving.limits import RequestLimits

__all__ = ["ServingSettings", "SettingsError"]

_PREFIX = "BESPOKE_"


class SettingsError(ValueError):
    """The environment does not describe a valid service; the message names the variable."""


class ServingSettings(BaseModel):
    """Everything the service needs to know, validated once at start-up."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_uri: str | None = None
    version: int | None = Field(default=None, ge=1)
    base_model_uri: str | None = None
    namespace: str = "default"
    customization: str = "local"
    merge_adapter: bool = False
    batching: Literal["greedy", "adaptive"] = "greedy"
    max_batch_size: int = Field(default=32, ge=2, le=4096)
    max_latency_ms: int = Field(default=100, ge=1)
    max_texts_per_request: int = Field(default=64, ge=1)
    max_characters_per_text: int = Field(default=4000, ge=1)
    max_new_tokens: int = Field(default=256, ge=1)
    max_request_bytes: int = Field(default=1_048_576, ge=64)
    max_concurrent_requests: int = Field(default=64, ge=1)
    max_queued_texts: int = Field(default=1024, ge=1)
    retry_after_seconds: int = Field(default=1, ge=1, le=3600)
    capture_queue_size: int = Field(default=10_000, ge=1)
    capture_window_size: int = Field(default=1000, ge=2)
    capture_uri: str | None = None
    capture_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    capture_max_files: int = Field(default=10, ge=1)
    drift_enabled: bool = True
    drift_interval_seconds: float = Field(default=300.0, gt=0)
    drift_method: DriftMethod = "auto"
    drift_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    drift_min_rows: int = Field(default=100, ge=2)
    drift_isolated: bool = True
    drift_embeddings: bool = False
    access_log: bool = False
    pvc_root: str = "/mnt/pvc"
    torch_threads: int = Field(default=0, ge=0)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServingSettings:
        """Read `BESPOKE_*` variables; empty values count as unset."""
        env = os.environ if environ is None else environ
        values = {
            name: env[_PREFIX + name.upper()]
            for name in cls.model_fields
            if env.get(_PREFIX + name.upper(), "") != ""
        }
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{_PREFIX}{str(err['loc'][0]).upper()}: {err['msg']}" for err in exc.errors()
            )
            raise SettingsError(f"invalid serving settings: {problems}") from exc

    def request_limits(self) -> RequestLimits:
        """The request limits part of the settings."""
        return RequestLimits(
            max_texts_per_request=self.max_texts_per_request,
            max_characters_per_text=self.max_characters_per_text,
            max_new_tokens=self.max_new_tokens,
            max_request_bytes=self.max_request_bytes,
        )
