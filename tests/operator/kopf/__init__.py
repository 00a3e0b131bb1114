"""Operator handler and fault tests against kmock (fast; no cluster)."""
