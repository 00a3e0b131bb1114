"""A minimal BentoML service whose only job is to let tests read BentoML's own request metrics."""

from __future__ import annotations

import bentoml


@bentoml.service(workers=1)
class MetricsProbe:
    """Echoes text back; every call is counted and timed by BentoML's instrumentation."""

    @bentoml.api
    def echo(self, text: str) -> str:
        return text
