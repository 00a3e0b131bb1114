"""The training hash: which spec changes mean a new version, and which only a redeploy."""

from __future__ import annotations

import hashlib
import json
from typing import Final

from bespoke_operator.api import ModelCustomizationSpec
from bespoke_operator.api.serving import Serving

__all__ = [
    "OPERATOR_ONLY_TRAINING_FIELDS",
    "UNHASHED_TRAINING_FIELDS",
    "serving_hash",
    "training_hash",
]

# Fields of spec.serving that say which version serves and how long a rollout may take, not
# what the serving pods are.
_NOT_SHAPE: Final = frozenset({"enabled", "pinned_version", "rollout_deadline_seconds"})

#: Fields of spec.training only the operator uses (where and how long a trainer pod runs): left
#: out of the trainer's config.
OPERATOR_ONLY_TRAINING_FIELDS: Final = frozenset(
    {
        "resources",
        "node_selector",
        "tolerations",
        "priority_class_name",
        "queue_name",
        "image",
        "deadline_seconds",
        "startup_deadline_seconds",
        "retry_limit",
    }
)
#: Fields of spec.training that change where or how fast a trainer runs, not what it learns:
#: left out of the training hash, so changing them redeploys without retraining.
UNHASHED_TRAINING_FIELDS: Final = OPERATOR_ONLY_TRAINING_FIELDS | {
    "gradient_checkpointing",
    "checkpoint_every_steps",
}


def training_hash(spec: ModelCustomizationSpec) -> str:
    """A stable sha256 (hex, 64 chars) of everything that changes what the trainer produces."""
    relevant = {
        "baseModel": spec.base_model.model_dump(mode="json", by_alias=True),
        "task": spec.task,
        "dataset": spec.dataset.model_dump(mode="json", by_alias=True),
        "method": spec.method.model_dump(mode="json", by_alias=True),
        "training": spec.training.model_dump(
            mode="json", by_alias=True, exclude=set(UNHASHED_TRAINING_FIELDS)
        ),
    }
    encoded = json.dumps(relevant, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(encoded.encode()).hexdigest()


def serving_hash(serving: Serving) -> str:
    """A stable sha256 (hex) of the serving shape: image, replicas, resources, batching, limits.

    The Deployment records it, so the core knows whether what is available is what it asked for,
    and which shape a failed serving-only change rolls back to.
    """
    shape = serving.model_dump(mode="json", by_alias=True, exclude=set(_NOT_SHAPE))
    encoded = json.dumps(shape, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(encoded.encode()).hexdigest()
