"""The operator's tests by level: unit, kopf (handlers on kmock), cluster (real API), e2e (CLI)."""
# ruff: noqa: A005  # tests.operator is only ever imported as a subpackage, never as `operator`
