"""The BentoML service serving one model version (configured by `bespoke_serving.settings`).

Routes: `POST /classify` (batched, see `BESPOKE_BATCHING`), `POST /generate`, `GET /drift`, and
BentoML's `/healthz`, `/readyz` (ready only after load and warm-up) and `/metrics` (with
Bespoke's drift gauges and shed/dropped counters, `bespoke_serving.counters`, appended). Request
limits and load shedding (503 + `Retry-After`) are enforced by
`bespoke_serving.limits.RequestGuard`; every error response has one JSON shape
(`bespoke_serving.error_shape.ErrorShape`).

Run: `bentoml serve bespoke_serving.service:Bespoke` with `BESPOKE_MODEL_URI` set.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import bentoml
from bentoml.exceptions import BentoMLException
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bespoke_serving.batching import MicroBatcher
from bespoke_serving.counters import COUNTERS
from bespoke_serving.error_shape import ErrorShape
from bespoke_serving.errors import NotReadyError, OverloadedError, WrongTaskError
from bespoke_serving.limits import RequestGuard
from bespoke_serving.settings import ServingSettings

__all__ = ["Bespoke"]

# Batching and limits shape the routes, so they are read when the module is imported.
SETTINGS = ServingSettings.from_env()


async def _drift(_: Request) -> JSONResponse:
    service = bentoml.get_current_service()
    if service is None:
        return JSONResponse({"error": "the service is starting"}, status_code=503)
    return JSONResponse(service.runtime.drift_payload())


_drift_app = Starlette(routes=[Route("/drift", _drift, methods=["GET"])])


def _http_error(exc: Exception) -> BentoMLException:
    if isinstance(exc, NotReadyError | OverloadedError):
        return BentoMLException(str(exc), error_code=HTTPStatus.SERVICE_UNAVAILABLE)
    return BentoMLException(str(exc), error_code=HTTPStatus.CONFLICT)


@bentoml.asgi_app(_drift_app, path="/")
@bentoml.service(
    name="bespoke",
    workers=1,
    traffic={"timeout": 120},
    logging={"access": {"enabled": SETTINGS.access_log}},
)
class Bespoke:
    """One model version: predictions, capture for drift, and the drift reading."""

    def __init__(self) -> None:
        # Imported here, in the worker: BentoML's CLI process only reads this module to learn
        # the service's shape, and importing torch there cost a quarter of a cold start.
        from bespoke_serving.runtime import Runtime

        self.runtime = Runtime(SETTINGS)
        info, runtime = self.runtime.info, self.runtime
        COUNTERS.bind(
            SETTINGS.namespace,
            SETTINGS.customization,
            info.version,
            lambda: runtime.capture.dropped if runtime.capture is not None else 0,
        )
        self.batcher = MicroBatcher(
            self.runtime.classify, SETTINGS.max_batch_size, SETTINGS.max_queued_texts
        )
        self.runtime.start()

    def __is_ready__(self) -> bool:
        return self.runtime.ready

    def __metrics__(self, content: str) -> str:
        return content + self.runtime.collector.exposition() + COUNTERS.exposition()

    # bentoml's decorators are untyped; the signatures below are what they expose. Both
    # variants take the same body, so clients and the OpenAPI document do not change.
    if SETTINGS.batching == "adaptive":

        @bentoml.api(  # type: ignore[untyped-decorator]
            batchable=True,
            max_batch_size=SETTINGS.max_batch_size,
            max_latency_ms=SETTINGS.max_latency_ms,
        )
        def classify(self, texts: list[str]) -> list[dict[str, Any]]:
            """Label, score and serving version for each text."""
            try:
                return self.runtime.classify(texts)
            except (NotReadyError, WrongTaskError) as exc:
                raise _http_error(exc) from exc

    else:

        @bentoml.api  # type: ignore[untyped-decorator]
        async def classify(self, texts: list[str]) -> list[dict[str, Any]]:
            """Label, score and serving version for each text."""
            try:
                return await self.batcher(texts)
            except OverloadedError as exc:
                COUNTERS.shed("queue")
                raise _http_error(exc) from exc
            except (NotReadyError, WrongTaskError) as exc:
                raise _http_error(exc) from exc

    @bentoml.api  # type: ignore[untyped-decorator]
    def generate(
        self,
        prompt: str,
        max_new_tokens: int | None = None,
        temperature: float = 0.0,
        top_p: float = 1.0,
    ) -> dict[str, Any]:
        """Continue `prompt`; `temperature` 0 is greedy decoding."""
        try:
            return self.runtime.generate(prompt, max_new_tokens, temperature, top_p)
        except (NotReadyError, WrongTaskError) as exc:
            raise _http_error(exc) from exc

    @bentoml.on_shutdown  # type: ignore[untyped-decorator]
    def _shutdown(self) -> None:
        self.batcher.close()
        self.runtime.close()


# `bentoml.service` returns a Service wrapper; mypy still sees the decorated class.
Bespoke.add_asgi_middleware(  # type: ignore[attr-defined]
    RequestGuard,
    limits=SETTINGS.request_limits(),
    max_concurrent=SETTINGS.max_concurrent_requests,
    retry_after_seconds=SETTINGS.retry_after_seconds,
)
Bespoke.add_asgi_middleware(ErrorShape, retry_after_seconds=SETTINGS.retry_after_seconds)  # type: ignore[attr-defined]
# BentoML works out each response's media type from the output's JSON schema, which it
# generates anew for every response (a tenth of the request path's CPU, measured); both
# routes answer JSON, so it is said once here.
for _api in Bespoke.apis.values():  # type: ignore[attr-defined]
    _api.output_spec.media_type = "application/json"
