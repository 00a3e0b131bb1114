"""kopf settings: the child watches select on the server exactly what the runtime labels."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kopf
import yaml

from bespoke_operator.api import ModelCustomization
from bespoke_operator.constants import SERVING_DEPLOYMENTS, TRAINER_JOBS
from bespoke_operator.handlers import apply_settings
from bespoke_operator.reconcile import CreateVersion, Observed, decide
from bespoke_operator.reconcile.serving import serving_shape
from bespoke_operator.reconcile.trainer_config import trainer_shape
from bespoke_operator.runtimes.kubernetes import objects

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "text-classification-lora.yaml"
OWNER = objects.OwnerRef("bespoke.dev/v1alpha1", "ModelCustomization", "sentiment", "uid-1")
IMAGES = objects.Images(trainer="trainer:test", serving="serving:test")


def _selector(settings: kopf.OperatorSettings, resource: kopf.Resource) -> dict[str, str]:
    """The equality-based label selector kopf sends with its watch of `resource`."""
    joined = ",".join(settings.watching.label_selectors.collect(resource))
    return dict(term.split("=", 1) for term in joined.split(",") if term)


def _children() -> tuple[dict[str, Any], dict[str, Any]]:
    document = yaml.safe_load(EXAMPLE.read_text())
    document["metadata"]["namespace"] = "ml"
    mc = ModelCustomization.model_validate(document)
    decision = decide(mc, Observed(now=datetime.now(UTC)))
    version = next(a for a in decision.actions if isinstance(a, CreateVersion)).version.spec
    job = objects.trainer_job(version, trainer_shape(version), 1, "ml", OWNER, IMAGES)
    shape = serving_shape(mc, version=1, artifact_uri=version.artifact_uri)
    deployment = objects.serving_deployment(shape, OWNER, IMAGES)
    return job, deployment


def test_child_watches_select_on_the_server_what_the_runtime_labels() -> None:
    settings = kopf.OperatorSettings()
    apply_settings(settings)
    jobs = _selector(settings, kopf.Resource("batch", "v1", "jobs", kind="Job"))
    deployments = _selector(settings, kopf.Resource("apps", "v1", "deployments", kind="Deployment"))

    # What the watches ask the server for is what the handlers filter on...
    assert jobs == TRAINER_JOBS
    assert deployments == SERVING_DEPLOYMENTS
    # ...and every trainer Job and serving Deployment the runtime creates carries those labels,
    # or their events (a finished trainer, a rollout) would never reach the operator.
    job, deployment = _children()
    assert jobs.items() <= job["metadata"]["labels"].items()
    assert deployments.items() <= deployment["metadata"]["labels"].items()
    # The customizations themselves are watched whole.
    customizations = kopf.Resource("bespoke.dev", "v1alpha1", "modelcustomizations")
    assert _selector(settings, customizations) == {}
