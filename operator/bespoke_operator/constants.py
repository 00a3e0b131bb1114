"""The names Bespoke shares with the cluster, decided once: API group, plurals, labels, annotations.

Every module that writes or selects on one of these imports it from here. This module imports
nothing, so every layer (api, reconcile, runtimes, handlers, the CLI) may use it.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "API_VERSION",
    "APPROVAL_ANNOTATION",
    "ATTEMPT_LABEL",
    "COMPONENT_LABEL",
    "CUSTOMIZATIONS",
    "CUSTOMIZATION_LABEL",
    "DOMAIN",
    "FINALIZER",
    "GROUP",
    "INSTANCE_LABEL",
    "MANAGED_BY_LABEL",
    "NAME_LABEL",
    "PART_OF",
    "PART_OF_LABEL",
    "QUEUE_LABEL",
    "SERVING",
    "SERVING_DEPLOYMENTS",
    "TRAINER",
    "TRAINER_JOBS",
    "TRAINING_HASH_ANNOTATION",
    "VERSION",
    "VERSIONS",
    "VERSION_LABEL",
]

#: The API group, also the prefix of every label and annotation key Bespoke owns.
DOMAIN: Final = "bespoke.dev"
GROUP: Final = DOMAIN
VERSION: Final = "v1alpha1"
#: `GROUP/VERSION`, spelled out so type checkers see the literal the models' `apiVersion` declares.
API_VERSION: Final = "bespoke.dev/v1alpha1"
#: Plural (REST) names of the two kinds.
CUSTOMIZATIONS: Final = "modelcustomizations"
VERSIONS: Final = "modelversions"

# --- labels: Kubernetes' recommended ones, then Bespoke's own ---------------------------------
PART_OF_LABEL: Final = "app.kubernetes.io/part-of"
MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
NAME_LABEL: Final = "app.kubernetes.io/name"
INSTANCE_LABEL: Final = "app.kubernetes.io/instance"
COMPONENT_LABEL: Final = "app.kubernetes.io/component"
#: The value of the part-of (and managed-by) label on everything Bespoke creates.
PART_OF: Final = "bespoke"
#: The component label's values.
TRAINER: Final = "trainer"
SERVING: Final = "serving"
CUSTOMIZATION_LABEL: Final = f"{DOMAIN}/customization"
VERSION_LABEL: Final = f"{DOMAIN}/version"
ATTEMPT_LABEL: Final = f"{DOMAIN}/attempt"
#: Kueue's queue label, copied from `spec.training.queueName` onto the trainer Job.
QUEUE_LABEL: Final = "kueue.x-k8s.io/queue-name"
#: The children whose events trigger a reconcile; kopf's watches select them on the server.
TRAINER_JOBS: Final = {PART_OF_LABEL: PART_OF, COMPONENT_LABEL: TRAINER}
SERVING_DEPLOYMENTS: Final = {PART_OF_LABEL: PART_OF, COMPONENT_LABEL: SERVING}

# --- annotations ----------------------------------------------------------------------------
#: On a ModelVersion, `true`: a person approved it for production.
APPROVAL_ANNOTATION: Final = f"{DOMAIN}/approved"
#: On trainer objects: the training hash of the version they train (a label value is too short).
TRAINING_HASH_ANNOTATION: Final = f"{DOMAIN}/training-hash"
#: The finalizer older releases added; named so kopf removes it from existing customizations.
FINALIZER: Final = f"{DOMAIN}/finalizer"
