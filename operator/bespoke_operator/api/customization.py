"""`ModelCustomization` (bespoke.dev/v1alpha1): the user's intent for one customized model.

Each section of the spec has its own module (`base_model`, `dataset`, `training`, `evaluation`,
`serving`, `monitoring`, `storage`) and the status has `status`; this module holds the spec's
cross-field rules, the spec and the resource, and re-exports the section models.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import ConfigDict, Field, ValidationInfo, model_validator

from bespoke_operator import constants
from bespoke_operator.api._base import ApiModel, section
from bespoke_operator.api.base_model import BaseModelSource
from bespoke_operator.api.conditions import ObjectMeta
from bespoke_operator.api.dataset import Augmentation, Columns, Dataset, DataSource, Split
from bespoke_operator.api.evaluation import ChampionDelta, Evaluation, FairnessLimits, Gate
from bespoke_operator.api.monitoring import Monitoring, OnDrift
from bespoke_operator.api.rules import Rule, RuleViolation, raise_violations, schema_rules
from bespoke_operator.api.serving import Batching, RequestLimits, Serving, ServingResources
from bespoke_operator.api.status import (
    DriftReading,
    ModelCustomizationStatus,
    RetrainLedger,
    Rollout,
)
from bespoke_operator.api.storage import SecretReference, Storage
from bespoke_operator.api.tasks import METRICS_BY_TASK, Task
from bespoke_operator.api.training import (
    EarlyStopping,
    LoraSettings,
    Method,
    Resources,
    Toleration,
    Training,
)

__all__ = [
    "API_VERSION",
    "NAME_LENGTH",
    "SPEC_RULES",
    "TASK_IMMUTABLE",
    "Augmentation",
    "BaseModelSource",
    "Batching",
    "ChampionDelta",
    "Columns",
    "DataSource",
    "Dataset",
    "DriftReading",
    "EarlyStopping",
    "Evaluation",
    "FairnessLimits",
    "Gate",
    "LoraSettings",
    "Method",
    "ModelCustomization",
    "ModelCustomizationSpec",
    "ModelCustomizationStatus",
    "Monitoring",
    "OnDrift",
    "RequestLimits",
    "Resources",
    "RetrainLedger",
    "Rollout",
    "SecretReference",
    "Serving",
    "ServingResources",
    "Split",
    "Storage",
    "Toleration",
    "Training",
    "check_update",
]

API_VERSION: Final = constants.API_VERSION


# --- spec ------------------------------------------------------------------------------------


def _metric_rule(task: str, where: str, cel_set: str, py_get: Any, path: str) -> Rule[Any]:
    names = METRICS_BY_TASK[task]
    listed = ", ".join(names)
    cel_list = "[" + ", ".join(f"'{n}'" for n in names) + "]"
    return Rule(
        cel=f"self.task != '{task}' || {cel_set.format(allowed=cel_list)}",
        message=f"{where} on a {task} task must name a metric it computes: {listed}",
        field_path=path,
        check=lambda spec: spec.task != task or all(m in names for m in py_get(spec)),
    )


def _metric_rules(task: str) -> list[Rule[Any]]:
    return [
        _metric_rule(
            task,
            "every entry of `evaluation.metrics`",
            "!has(self.evaluation) || !has(self.evaluation.metrics) || "
            "self.evaluation.metrics.all(m, m in {allowed})",
            lambda spec: spec.evaluation.metrics,
            ".evaluation.metrics",
        ),
        _metric_rule(
            task,
            "every gate",
            "!has(self.evaluation) || !has(self.evaluation.gates) || "
            "self.evaluation.gates.all(g, g.metric in {allowed})",
            lambda spec: [g.metric for g in spec.evaluation.gates],
            ".evaluation.gates",
        ),
        _metric_rule(
            task,
            "`championDelta`",
            "!has(self.evaluation) || !has(self.evaluation.championDelta) || "
            "self.evaluation.championDelta.metric in {allowed}",
            lambda spec: (
                [spec.evaluation.champion_delta.metric] if spec.evaluation.champion_delta else []
            ),
            ".evaluation.championDelta.metric",
        ),
        _metric_rule(
            task,
            "`earlyStopping`",
            "!has(self.training) || !has(self.training.earlyStopping) || "
            "!has(self.training.earlyStopping.metric) || "
            "self.training.earlyStopping.metric in {allowed}",
            lambda spec: [m] if (m := spec.training.early_stopping.metric) else [],
            ".training.earlyStopping.metric",
        ),
    ]


_QLORA_NEEDS_GPU: Rule[ModelCustomizationSpec] = Rule(
    cel="!has(self.method) || !has(self.method.type) || self.method.type != 'qlora' || "
    "(has(self.training) && has(self.training.resources) && "
    "has(self.training.resources.gpus) && self.training.resources.gpus >= 1)",
    message="`qlora` needs at least one GPU: set training.resources.gpus to 1 or more, "
    "or use method `lora`",
    field_path=".training.resources.gpus",
    check=lambda spec: spec.method.type != "qlora" or spec.training.resources.gpus >= 1,
)

_FAIRNESS_NEEDS_GROUPS: Rule[ModelCustomizationSpec] = Rule(
    cel="!has(self.evaluation) || !has(self.evaluation.fairness) || "
    "!(has(self.evaluation.fairness.maxDemographicParityDifference) || "
    "has(self.evaluation.fairness.maxEqualizedOddsDifference) || "
    "has(self.evaluation.fairness.minWorstGroupAccuracy)) || "
    "(self.task == 'text-classification' && has(self.dataset.sensitiveColumn))",
    message="fairness limits need a text-classification task and `dataset.sensitiveColumn` "
    "naming the group column",
    field_path=".evaluation.fairness",
    check=lambda spec: (
        not spec.evaluation.fairness.any_set()
        or (spec.task == "text-classification" and spec.dataset.sensitive_column is not None)
    ),
)

_GROUPS_NEED_CLASSIFICATION: Rule[ModelCustomizationSpec] = Rule(
    cel="self.task == 'text-classification' || !has(self.dataset.sensitiveColumn)",
    message="`sensitiveColumn` (the fairness audit) is only supported for text-classification",
    field_path=".dataset.sensitiveColumn",
    check=lambda spec: spec.task == "text-classification" or spec.dataset.sensitive_column is None,
)

_AUGMENTATION_NEEDS_CLASSIFICATION: Rule[ModelCustomizationSpec] = Rule(
    cel="self.task == 'text-classification' || !has(self.dataset.augmentation) || "
    "!has(self.dataset.augmentation.enabled) || !self.dataset.augmentation.enabled",
    message="`augmentation` is only supported for text-classification: set "
    "dataset.augmentation.enabled to false",
    field_path=".dataset.augmentation.enabled",
    check=lambda spec: spec.task == "text-classification" or not spec.dataset.augmentation.enabled,
)

_MITIGATION_NEEDS_GROUPS: Rule[ModelCustomizationSpec] = Rule(
    cel="!has(self.training) || !has(self.training.mitigateBias) || "
    "!self.training.mitigateBias || has(self.dataset.sensitiveColumn)",
    message="`mitigateBias` needs `dataset.sensitiveColumn` naming the group column",
    field_path=".training.mitigateBias",
    check=lambda spec: not spec.training.mitigate_bias or spec.dataset.sensitive_column is not None,
)

_COLUMNS_CEL: Final = (
    "self.task != '{task}' || !has(self.dataset.columns) || "
    "((!has(self.dataset.columns.{a}) || self.dataset.columns.{a} == '{a}') && "
    "(!has(self.dataset.columns.{b}) || self.dataset.columns.{b} == '{b}'))"
)

_CAUSAL_LM_COLUMNS: Rule[ModelCustomizationSpec] = Rule(
    cel=_COLUMNS_CEL.format(task="causal-lm", a="text", b="label"),
    message="`columns.text` and `columns.label` are read by text-classification only: a "
    "causal-lm task reads `columns.prompt` and `columns.response` — name your columns there",
    field_path=".dataset.columns",
    check=lambda spec: (
        spec.task != "causal-lm"
        or (spec.dataset.columns.text == "text" and spec.dataset.columns.label == "label")
    ),
)

_CLASSIFICATION_COLUMNS: Rule[ModelCustomizationSpec] = Rule(
    cel=_COLUMNS_CEL.format(task="text-classification", a="prompt", b="response"),
    message="`columns.prompt` and `columns.response` are read by causal-lm only: a "
    "text-classification task reads `columns.text` and `columns.label` — name your columns there",
    field_path=".dataset.columns",
    check=lambda spec: (
        spec.task != "text-classification"
        or (spec.dataset.columns.prompt == "prompt" and spec.dataset.columns.response == "response")
    ),
)

#: Every cross-field rule on the spec, in the order they are reported.
SPEC_RULES: Final[tuple[Rule[Any], ...]] = (
    _QLORA_NEEDS_GPU,
    *_metric_rules("text-classification"),
    *_metric_rules("causal-lm"),
    _FAIRNESS_NEEDS_GROUPS,
    _GROUPS_NEED_CLASSIFICATION,
    _AUGMENTATION_NEEDS_CLASSIFICATION,
    _MITIGATION_NEEDS_GROUPS,
    _CAUSAL_LM_COLUMNS,
    _CLASSIFICATION_COLUMNS,
)

TASK_IMMUTABLE: Final[dict[str, str]] = {
    "rule": "self == oldSelf",
    "message": "`task` cannot change on an existing customization: create a new "
    "ModelCustomization for the new task",
}


class ModelCustomizationSpec(ApiModel):
    """What the user wants: base model, data, method, gates, serving, monitoring."""

    model_config = ConfigDict(
        json_schema_extra=schema_rules(*(rule.as_crd_validation() for rule in SPEC_RULES))
    )

    base_model: BaseModelSource = Field(description="The pre-trained model to start from.")
    task: Task = Field(
        description="text-classification (sequence classification head) or causal-lm "
        "(instruction tuning / SFT). Cannot change once created.",
        json_schema_extra=schema_rules(TASK_IMMUTABLE),
    )
    dataset: Dataset = Field(description="The data to adapt the model to.")
    method: Method = section(Method, "How the model is adapted (LoRA by default).")
    training: Training = section(Training, "Hyperparameters and scheduling of training.")
    evaluation: Evaluation = section(Evaluation, "Gates a candidate must clear.")
    serving: Serving = section(Serving, "Serving of the production version.")
    monitoring: Monitoring = section(Monitoring, "Drift monitoring and retraining policy.")
    storage: Storage = Field(description="Where versions and their artifacts are written.")
    version_history_limit: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="Versions kept; the oldest ones not serving are deleted beyond this.",
    )

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> ModelCustomizationSpec:
        raise_violations(self, SPEC_RULES, info)
        return self

    def locations(self) -> list[tuple[str, str]]:
        """Every model, data and artifact location in the spec, with its field path."""
        dataset = self.dataset
        sources = {
            "spec.dataset.train.uri": dataset.train,
            "spec.dataset.validation.uri": dataset.validation,
            "spec.dataset.test.uri": dataset.test,
            "spec.monitoring.onDrift.dataset.uri": self.monitoring.on_drift.dataset,
        }
        return [
            ("spec.baseModel.uri", self.base_model.uri),
            *((path, source.uri) for path, source in sources.items() if source is not None),
            ("spec.storage.uri", self.storage.uri),
        ]


def check_update(old: ModelCustomizationSpec, new: ModelCustomizationSpec) -> list[RuleViolation]:
    """Rules on a change of spec (the CRD's transition rules), for runtimes that keep the old."""
    if old.task != new.task:
        return [RuleViolation(".task", TASK_IMMUTABLE["message"])]
    return []


NAME_LENGTH: Rule[ModelCustomization] = Rule(
    cel="size(self.metadata.name) <= 40",
    message="metadata.name must be at most 40 characters: child objects (Jobs, Services) "
    "add a suffix to it and must stay within 63",
    field_path=".metadata.name",
    check=lambda resource: len(resource.metadata.name) <= 40,
)


class ModelCustomization(ApiModel):
    """A `ModelCustomization` resource as read from a file or the API server."""

    api_version: Literal["bespoke.dev/v1alpha1"] = Field(
        alias="apiVersion", description="bespoke.dev/v1alpha1"
    )
    kind: Literal["ModelCustomization"] = Field(description="ModelCustomization")
    metadata: ObjectMeta = Field(description="Standard object metadata.")
    spec: ModelCustomizationSpec = Field(description="The desired customization.")
    status: ModelCustomizationStatus | None = Field(default=None, description="Observed state.")

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> ModelCustomization:
        raise_violations(self, [NAME_LENGTH], info)
        return self
