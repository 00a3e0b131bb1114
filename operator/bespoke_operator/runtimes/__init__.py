"""Runtimes: turn the reconcile core's actions into objects (Kubernetes) or processes (local)."""
