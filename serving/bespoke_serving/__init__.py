"""The BentoML service that serves a Bespoke model version, with traffic capture and drift."""

__all__: list[str] = []
