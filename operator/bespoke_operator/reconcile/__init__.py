"""The reconcile core: pure decisions from a customization and what was observed."""

from bespoke_operator.reconcile.actions import (
    Action,
    CreateVersion,
    DeleteVersion,
    Deploy,
    Event,
    SetVersionStatus,
    StartTrainer,
    StopTrainer,
    Undeploy,
)
from bespoke_operator.reconcile.conditions import stalled_status
from bespoke_operator.reconcile.decide import (
    APPROVAL_ANNOTATION,
    PERMANENT_EXIT_CODES,
    Decision,
    artifact_uri,
    decide,
    version_name,
)
from bespoke_operator.reconcile.hashing import training_hash
from bespoke_operator.reconcile.observed import (
    DriftReport,
    Observed,
    ServingState,
    StartupProblem,
    TrainerRun,
    TrainerSummary,
    approved_versions,
    drift_report,
)

__all__ = [
    "APPROVAL_ANNOTATION",
    "PERMANENT_EXIT_CODES",
    "Action",
    "CreateVersion",
    "Decision",
    "DeleteVersion",
    "Deploy",
    "DriftReport",
    "Event",
    "Observed",
    "ServingState",
    "SetVersionStatus",
    "StartTrainer",
    "StartupProblem",
    "StopTrainer",
    "TrainerRun",
    "TrainerSummary",
    "Undeploy",
    "approved_versions",
    "artifact_uri",
    "decide",
    "drift_report",
    "stalled_status",
    "training_hash",
    "version_name",
]
