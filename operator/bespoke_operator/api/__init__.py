"""The Bespoke API (bespoke.dev/v1alpha1): typed models that are the single source of the CRDs."""

from bespoke_operator.api._base import URI_SCHEMES, is_relative_location
from bespoke_operator.api.conditions import Condition, ObjectMeta
from bespoke_operator.api.customization import (
    API_VERSION,
    ModelCustomization,
    ModelCustomizationSpec,
    ModelCustomizationStatus,
    check_update,
)
from bespoke_operator.api.tasks import METRICS_BY_TASK, headline_metric
from bespoke_operator.api.version import (
    GateResult,
    ModelVersion,
    ModelVersionSpec,
    ModelVersionStatus,
)
from bespoke_operator.constants import GROUP, VERSION

__all__ = [
    "API_VERSION",
    "GROUP",
    "METRICS_BY_TASK",
    "URI_SCHEMES",
    "VERSION",
    "Condition",
    "GateResult",
    "ModelCustomization",
    "ModelCustomizationSpec",
    "ModelCustomizationStatus",
    "ModelVersion",
    "ModelVersionSpec",
    "ModelVersionStatus",
    "ObjectMeta",
    "check_update",
    "headline_metric",
    "is_relative_location",
]
