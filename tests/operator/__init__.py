"""Operator handler and fault tests against kmock (fast; no cluster)."""
# ruff: noqa: A005  # tests.operator is only ever imported as a subpackage, never as `operator`
