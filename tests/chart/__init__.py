"""Tests of the Helm chart, alerts, dashboard, images and GitOps health checks."""
