"""`ModelCustomization` (bespoke.dev/v1alpha1): the user's intent for one customized model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Final, Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from bespoke_operator.api._base import (
    ApiModel,
    Decimal,
    Name,
    Quantity,
    SignedDecimal,
    Timestamp,
    Uri,
    parse_decimal,
    section,
)
from bespoke_operator.api.conditions import Condition, ObjectMeta
from bespoke_operator.api.metrics import METRICS_BY_TASK, SHARE_METRICS, MetricName, Task
from bespoke_operator.api.rules import (
    FieldRule,
    Rule,
    RuleViolation,
    raise_violations,
    schema_rules,
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
    "ServedShape",
    "Serving",
    "ServingResources",
    "Split",
    "Storage",
    "Toleration",
    "Training",
    "check_update",
]

API_VERSION: Final = "bespoke.dev/v1alpha1"


# --- baseModel -------------------------------------------------------------------------------

_TRUST_NEEDS_REVISION: Rule[BaseModelSource] = Rule(
    cel="!has(self.trustRemoteCode) || !self.trustRemoteCode || "
    "(has(self.revision) && size(self.revision) > 0)",
    message="`trustRemoteCode` needs a pinned `revision` (a commit hash or tag), so the code "
    "that runs is the code that was reviewed",
    field_path=".revision",
    check=lambda base: not base.trust_remote_code or bool(base.revision),
)


class BaseModelSource(ApiModel):
    """The pre-trained model to start from."""

    model_config = ConfigDict(
        json_schema_extra=schema_rules(_TRUST_NEEDS_REVISION.as_crd_validation())
    )

    uri: Uri = Field(
        description="Where the pre-trained model is: hf://org/name (Hugging Face Hub, or its "
        "local cache when offline), pvc://claim/path, s3://bucket/prefix, or file:///abs/path."
    )
    revision: str | None = Field(
        default=None,
        max_length=128,
        description="The revision to pin (commit hash, tag or branch) for hf:// models. "
        "Required when trustRemoteCode is true.",
    )
    trust_remote_code: bool = Field(
        default=False,
        description="Run Python code shipped with the model. Off by default; needs a pinned "
        "revision when on.",
    )

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> BaseModelSource:
        raise_violations(self, [_TRUST_NEEDS_REVISION], info)
        return self


# --- dataset ---------------------------------------------------------------------------------


class DataSource(ApiModel):
    """A data file or folder, referenced by location (data is never inlined in the spec)."""

    uri: Uri = Field(
        description="Location of the data: pvc://claim/path, s3://bucket/key, file:///abs/path "
        "or a path relative to the customization file (local runs)."
    )
    format: Literal["jsonl", "csv", "parquet"] | None = Field(
        default=None,
        description="File format. Inferred from the file extension when omitted.",
    )


def _decimal_range(cel: str, message: str, holds: Callable[[float], bool]) -> FieldRule[str]:
    """A range for a decimal-string field (the decimal pattern already rules out negatives)."""
    return FieldRule(cel, message, lambda value: holds(parse_decimal(value)))


_OPEN_FRACTION: Final = _decimal_range(
    "double(self) > 0.0 && double(self) < 1.0",
    'must be a fraction strictly between 0 and 1, written as a string, e.g. "0.1"',
    lambda x: 0.0 < x < 1.0,
)
_BELOW_ONE: Final = _decimal_range(
    "double(self) < 1.0",
    'must be from 0 up to (not including) 1, written as a string, e.g. "0.1"',
    lambda x: x < 1.0,
)
_AT_MOST_ONE: Final = _decimal_range(
    "double(self) <= 1.0",
    'must be a share from 0 to 1, written as a string, e.g. "0.1" (not a percentage)',
    lambda x: x <= 1.0,
)
_SHARE_ABOVE_ZERO: Final = _decimal_range(
    "double(self) > 0.0 && double(self) <= 1.0",
    'must be a share above 0 and at most 1, written as a string, e.g. "0.5"',
    lambda x: 0.0 < x <= 1.0,
)
_POSITIVE: Final = _decimal_range(
    "double(self) > 0.0",
    'must be above 0, written as a string, e.g. "2e-4"',
    lambda x: x > 0.0,
)


_SPLIT_SUM: Rule[Split] = Rule(
    cel="!has(self.validationFraction) || !has(self.testFraction) || "
    "double(self.validationFraction) + double(self.testFraction) < 0.9",
    message="`validationFraction` + `testFraction` must leave at least a tenth of the data "
    "for training (their sum must be below 0.9)",
    field_path=".testFraction",
    check=lambda split: (
        parse_decimal(split.validation_fraction) + parse_decimal(split.test_fraction) < 0.9
    ),
)


class Split(ApiModel):
    """How to carve validation and test sets out of the training data when none are given."""

    model_config = ConfigDict(json_schema_extra=schema_rules(_SPLIT_SUM.as_crd_validation()))

    validation_fraction: Decimal = Field(
        default="0.1",
        description="Share of the training data held out for validation (early stopping), "
        "used when dataset.validation is not set. A string, strictly between 0 and 1.",
        json_schema_extra=_OPEN_FRACTION.schema,
    )
    test_fraction: Decimal = Field(
        default="0.1",
        description="Share of the training data held out for the final evaluation and the gates, "
        "used when dataset.test is not set. A string, strictly between 0 and 1.",
        json_schema_extra=_OPEN_FRACTION.schema,
    )
    seed: int = Field(default=42, ge=0, description="Seed of the split, so it is reproducible.")

    _fractions = field_validator("validation_fraction", "test_fraction")(_OPEN_FRACTION.check)

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> Split:
        raise_violations(self, [_SPLIT_SUM], info)
        return self


class Columns(ApiModel):
    """Column names in the data files."""

    text: str = Field(default="text", max_length=128, description="Input text (classification).")
    label: str = Field(default="label", max_length=128, description="Class label (classification).")
    prompt: str = Field(default="prompt", max_length=128, description="Prompt (causal-lm).")
    response: str = Field(
        default="response",
        max_length=128,
        description="Expected response (causal-lm); the loss is computed on these tokens only.",
    )


_AUGMENTATIONS: Final[tuple[Literal["deletion", "swap", "insertion"], ...]] = (
    "deletion",
    "swap",
    "insertion",
)


class Augmentation(ApiModel):
    """Token-level augmentation for small datasets (classification)."""

    enabled: bool = Field(default=False, description="Augment the training split.")
    operations: list[Literal["deletion", "swap", "insertion"]] = Field(
        default_factory=lambda: list(_AUGMENTATIONS),
        max_length=3,
        description="Operations to apply: random word deletion, swap of neighbouring words, "
        "insertion of a word seen in the same class.",
    )
    probability: Decimal = Field(
        default="0.1",
        description="Per-word probability of each operation, as a string from 0 up to 1.",
        json_schema_extra=_BELOW_ONE.schema,
    )
    copies: int = Field(
        default=1, ge=1, le=10, description="Augmented copies added per training example."
    )

    _probability = field_validator("probability")(_BELOW_ONE.check)


class Dataset(ApiModel):
    """The data to adapt the model to."""

    train: DataSource = Field(description="Training data.")
    validation: DataSource | None = Field(
        default=None,
        description="Validation data for early stopping. Split from train when omitted.",
    )
    test: DataSource | None = Field(
        default=None,
        description="Held-out test data the gates are evaluated on. Split from train when omitted.",
    )
    split: Split = section(Split, "How to split train when validation or test are omitted.")
    columns: Columns = section(Columns, "Column names in the data.")
    sensitive_column: str | None = Field(
        default=None,
        max_length=128,
        description="Column holding a sensitive attribute (group) for the fairness audit "
        "(text-classification only). Used for evaluation only, never as a model input.",
    )
    augmentation: Augmentation = section(
        Augmentation, "Augmentation for small data (text-classification only)."
    )


# --- method ----------------------------------------------------------------------------------


class LoraSettings(ApiModel):
    """LoRA adapter settings; the fields mirror PEFT's `LoraConfig`."""

    r: int = Field(default=16, ge=1, le=1024, description="Rank of the update matrices (`r`).")
    alpha: int = Field(default=32, ge=1, le=4096, description="Scaling numerator (`lora_alpha`).")
    dropout: Decimal = Field(
        default="0.05",
        description="Dropout on the adapter input (`lora_dropout`), as a string from 0 up to 1.",
        json_schema_extra=_BELOW_ONE.schema,
    )
    target_modules: list[Annotated[str, Field(max_length=128)]] | None = Field(
        default=None,
        max_length=64,
        description="Module names to adapt (`target_modules`). Omitted: every linear layer "
        "except the output head (PEFT's 'all-linear').",
    )
    bias: Literal["none", "all", "lora_only"] = Field(
        default="none", description="Which biases to train (`bias`)."
    )
    use_rslora: bool = Field(default=False, description="Rank-stabilized scaling (`use_rslora`).")
    use_dora: bool = Field(default=False, description="Weight-decomposed LoRA (`use_dora`).")

    _dropout = field_validator("dropout")(_BELOW_ONE.check)


class Method(ApiModel):
    """How the model is adapted."""

    type: Literal["lora", "qlora", "full"] = Field(
        default="lora",
        description="lora: train a low-rank adapter. qlora: LoRA over a 4-bit quantized base "
        "(needs a GPU). full: train every weight.",
    )
    lora: LoraSettings = section(LoraSettings, "Adapter settings for lora and qlora.")


# --- training --------------------------------------------------------------------------------


class EarlyStopping(ApiModel):
    """Stop when the validation metric stops improving."""

    metric: MetricName | None = Field(
        default=None,
        description="Validation metric to watch. Early stopping is off when omitted.",
    )
    patience: int = Field(
        default=3,
        ge=1,
        le=1000,
        description="Evaluations without improvement before training stops.",
    )


class Resources(ApiModel):
    """Compute requested for a pod."""

    gpus: int = Field(default=0, ge=0, le=64, description="NVIDIA GPUs (`nvidia.com/gpu`).")
    cpu: Quantity = Field(default="2", description='CPU request, e.g. "2" or "500m".')
    memory: Quantity = Field(default="8Gi", description='Memory request and limit, e.g. "16Gi".')


class Toleration(ApiModel):
    """A Kubernetes toleration, copied into the pod."""

    key: str | None = Field(default=None, max_length=316, description="Taint key.")
    operator: Literal["Exists", "Equal"] = Field(default="Equal", description="Key operator.")
    value: str | None = Field(default=None, max_length=63, description="Taint value.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to match; all effects when omitted."
    )
    toleration_seconds: int | None = Field(
        default=None, ge=0, description="How long a NoExecute taint is tolerated."
    )


class Training(ApiModel):
    """Hyperparameters and where the trainer runs."""

    epochs: int = Field(default=3, ge=1, le=1000, description="Passes over the training data.")
    learning_rate: Decimal = Field(
        default="2e-4",
        description="Peak learning rate, as a string above 0.",
        json_schema_extra=_POSITIVE.schema,
    )
    batch_size: int = Field(default=16, ge=1, le=4096, description="Examples per device step.")
    gradient_accumulation_steps: int = Field(
        default=1, ge=1, le=1024, description="Steps accumulated per optimizer update."
    )
    max_sequence_length: int = Field(
        default=256, ge=8, le=131072, description="Tokens per example; longer ones are truncated."
    )
    warmup_ratio: Decimal = Field(
        default="0.06",
        description="Share of steps with linear warm-up, as a string from 0 up to 1.",
        json_schema_extra=_BELOW_ONE.schema,
    )
    weight_decay: Decimal = Field(default="0.0", description="AdamW weight decay, as a string.")
    eval_every_steps: int | None = Field(
        default=None,
        ge=1,
        description="Validate every N optimizer steps. Omitted: once per epoch.",
    )
    checkpoint_every_steps: int = Field(
        default=200,
        ge=1,
        description="Checkpoint to storage every N steps, so a preempted pod resumes.",
    )
    early_stopping: EarlyStopping = section(EarlyStopping, "Early stopping on a metric.")
    seed: int = Field(default=42, ge=0, description="Seed for initialisation and data order.")
    warm_start: bool = Field(
        default=False,
        description="Start from the production version's adapter instead of from scratch "
        "(incremental training).",
    )
    mitigate_bias: bool = Field(
        default=False,
        description="Reweight training examples per sensitive group x label to reduce "
        "demographic-parity gaps (needs dataset.sensitiveColumn).",
    )
    gradient_checkpointing: bool = Field(
        default=False, description="Trade compute for memory on long sequences."
    )
    resources: Resources = section(Resources, "Compute for the trainer pod.")
    node_selector: dict[str, Annotated[str, Field(max_length=63)]] = Field(
        default_factory=dict,
        max_length=32,
        description="Node labels the trainer pod must match.",
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, max_length=32, description="Tolerations for the trainer pod."
    )
    priority_class_name: str | None = Field(
        default=None, max_length=253, description="PriorityClass of the trainer pod."
    )
    queue_name: str | None = Field(
        default=None,
        max_length=63,
        description="Kueue LocalQueue for quota and gang admission (label "
        "kueue.x-k8s.io/queue-name on the Job).",
    )
    image: str | None = Field(
        default=None,
        max_length=512,
        description="Trainer image. Omitted: the operator's default for its version.",
    )
    deadline_seconds: int = Field(
        default=86400,
        ge=60,
        description="Training is stopped and the version fails after this long.",
    )
    retry_limit: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Retries of a failed trainer (preemptions do not count).",
    )

    _learning_rate = field_validator("learning_rate")(_POSITIVE.check)
    _warmup_ratio = field_validator("warmup_ratio")(_BELOW_ONE.check)


# --- evaluation ------------------------------------------------------------------------------


_SHARES_CEL: Final = "[" + ", ".join(f"'{m}'" for m in SHARE_METRICS) + "]"

_GATE_BOUNDED: Rule[Gate] = Rule(
    cel="has(self.min) || has(self.max)",
    message="a gate needs `min`, `max` or both: without either it checks nothing",
    field_path=".min",
    check=lambda gate: gate.min is not None or gate.max is not None,
)
_GATE_ORDERED: Rule[Gate] = Rule(
    cel="!has(self.min) || !has(self.max) || double(self.min) <= double(self.max)",
    message="a gate's `min` must not be above its `max`: no value could pass",
    field_path=".max",
    check=lambda gate: (
        gate.min is None or gate.max is None or parse_decimal(gate.min) <= parse_decimal(gate.max)
    ),
)
_GATE_SHARE_REACHABLE: Rule[Gate] = Rule(
    cel=f"!has(self.min) || !(self.metric in {_SHARES_CEL}) || double(self.min) <= 1.0",
    message=f"`min` of {', '.join(SHARE_METRICS)} must be at most 1: these metrics are "
    'shares, e.g. "0.85" rather than "85"',
    field_path=".min",
    check=lambda gate: (
        gate.min is None or gate.metric not in SHARE_METRICS or parse_decimal(gate.min) <= 1.0
    ),
)
_GATE_RULES: Final = (_GATE_BOUNDED, _GATE_ORDERED, _GATE_SHARE_REACHABLE)


class Gate(ApiModel):
    """An absolute threshold the candidate's test metric must meet (`min`, `max` or both)."""

    model_config = ConfigDict(
        json_schema_extra=schema_rules(*(rule.as_crd_validation() for rule in _GATE_RULES))
    )

    metric: MetricName = Field(description="Metric the gate reads.")
    min: Decimal | None = Field(default=None, description="Lowest acceptable value, as a string.")
    max: Decimal | None = Field(default=None, description="Highest acceptable value, as a string.")

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> Gate:
        raise_violations(self, _GATE_RULES, info)
        return self


class ChampionDelta(ApiModel):
    """The candidate must beat the production version on the same held-out data."""

    metric: MetricName = Field(description="Metric compared; lower-is-better metrics are handled.")
    min_improvement: SignedDecimal = Field(
        default="0.0",
        description="How much better than production the candidate must be, as a string. "
        "Negative allows a bounded regression.",
    )


class FairnessLimits(ApiModel):
    """Limits from the fairness audit over dataset.sensitiveColumn."""

    max_demographic_parity_difference: Decimal | None = Field(
        default=None,
        description="Largest allowed gap in positive-prediction rate between groups (0 to 1).",
        json_schema_extra=_AT_MOST_ONE.schema,
    )
    max_equalized_odds_difference: Decimal | None = Field(
        default=None,
        description="Largest allowed gap in true/false-positive rates between groups (0 to 1).",
        json_schema_extra=_AT_MOST_ONE.schema,
    )
    min_worst_group_accuracy: Decimal | None = Field(
        default=None,
        description="Lowest allowed accuracy of any group (0 to 1).",
        json_schema_extra=_AT_MOST_ONE.schema,
    )

    _shares = field_validator(
        "max_demographic_parity_difference",
        "max_equalized_odds_difference",
        "min_worst_group_accuracy",
    )(_AT_MOST_ONE.check)

    def any_set(self) -> bool:
        """Whether any limit is declared."""
        return any(
            v is not None
            for v in (
                self.max_demographic_parity_difference,
                self.max_equalized_odds_difference,
                self.min_worst_group_accuracy,
            )
        )


class Evaluation(ApiModel):
    """What a candidate must show before it is promoted."""

    metrics: list[MetricName] = Field(
        default_factory=list,
        max_length=16,
        description="Extra metrics to report. The task's standard metrics are always computed.",
    )
    gates: list[Gate] = Field(
        default_factory=list, max_length=32, description="Absolute thresholds on test metrics."
    )
    champion_delta: ChampionDelta | None = Field(
        default=None,
        description="Required improvement over the production version. Ignored for the first "
        "version.",
    )
    fairness: FairnessLimits = section(FairnessLimits, "Fairness audit limits.")
    require_approval: bool = Field(
        default=False,
        description="Hold a passing candidate in AwaitingApproval until a person approves it "
        "(annotation bespoke.dev/approved=true on the ModelVersion, or serving.pinnedVersion).",
    )


# --- serving ---------------------------------------------------------------------------------


class Batching(ApiModel):
    """How `/classify` requests share model calls."""

    mode: Literal["greedy", "adaptive"] = Field(
        default="greedy",
        description=(
            "greedy: requests that queued while the model was busy ride in its next call, and "
            "no request waits for a batch to fill; adaptive: BentoML's adaptive batching, which "
            "waits up to maxLatencyMs for a batch to fill."
        ),
    )
    max_batch_size: int = Field(
        default=32, ge=2, le=1024, description="Most texts in one model call (2 or more)."
    )
    max_latency_ms: int = Field(
        default=100,
        ge=1,
        le=60000,
        description="adaptive only: the longest a request waits for a batch to fill.",
    )


class RequestLimits(ApiModel):
    """Bounds on each request; larger requests get a 4xx naming the limit."""

    max_texts_per_request: int = Field(default=64, ge=1, le=10000, description="Texts per call.")
    max_characters_per_text: int = Field(
        default=4000, ge=1, le=1000000, description="Characters per text or prompt."
    )
    max_new_tokens: int = Field(
        default=256, ge=1, le=32768, description="Generated tokens per prompt (causal-lm)."
    )
    max_request_bytes: int = Field(
        default=1048576, ge=1024, le=67108864, description="Request body size in bytes."
    )


_PINNED_RULE: Final[FieldRule[int]] = FieldRule(
    "self >= 1",
    "`pinnedVersion` must be 1 or more: versions are numbered from 1",
    lambda version: version >= 1,
)


class ServingResources(Resources):
    """Compute requested for each serving pod (smaller defaults than a trainer's)."""

    cpu: Quantity = Field(default="1", description='CPU request, e.g. "1" or "500m".')
    memory: Quantity = Field(default="2Gi", description='Memory request and limit, e.g. "2Gi".')


class Serving(ApiModel):
    """How the production version is served."""

    enabled: bool = Field(default=True, description="Serve the production version.")
    replicas: int = Field(default=1, ge=0, le=100, description="Serving pods.")
    resources: ServingResources = section(ServingResources, "Compute for each serving pod.")
    image: str | None = Field(
        default=None, max_length=512, description="Serving image. Omitted: the operator's default."
    )
    batching: Batching = section(Batching, "Adaptive batching.")
    limits: RequestLimits = section(RequestLimits, "Request size limits.")
    merge_adapter: bool = Field(
        default=False,
        description="Merge the adapter into the base weights at load (faster inference, "
        "more memory).",
    )
    pinned_version: int | None = Field(
        default=None,
        description="Serve exactly this version, whatever the gates say: a rollback or an "
        "approval that lives in Git.",
        json_schema_extra=_PINNED_RULE.schema,
    )
    rollout_deadline_seconds: int = Field(
        default=600,
        ge=30,
        description="A new version that is not available after this long is rolled back.",
    )

    _pinned = field_validator("pinned_version")(_PINNED_RULE.check)


# --- monitoring ------------------------------------------------------------------------------


class OnDrift(ApiModel):
    """What to do when drift is detected."""

    action: Literal["alert", "retrain"] = Field(
        default="alert",
        description="alert: report it (condition, event, metric). retrain: also train a new "
        "version.",
    )
    cooldown_seconds: int = Field(
        default=3600, ge=0, description="Least time between two drift-triggered retrains."
    )
    max_retrains_per_day: int = Field(
        default=2, ge=0, le=100, description="Most drift-triggered retrains per UTC day."
    )
    dataset: DataSource | None = Field(
        default=None,
        description="Labelled recent data added to the training set of drift-triggered versions.",
    )


class Monitoring(ApiModel):
    """Drift monitoring of production traffic."""

    enabled: bool = Field(default=True, description="Watch production traffic for drift.")
    window_size: int = Field(
        default=1000, ge=10, le=1000000, description="Most recent requests compared."
    )
    interval_seconds: int = Field(
        default=300, ge=5, le=86400, description="How often drift is computed and read."
    )
    method: Literal["auto", "psi", "ks", "wasserstein", "jensenshannon"] = Field(
        default="auto",
        description="Per-feature statistical test (Evidently's stattest); auto picks by type.",
    )
    threshold: Decimal = Field(
        default="0.5",
        description="Share of drifted features (above 0, at most 1) at or above which the "
        "traffic counts as drifted.",
        json_schema_extra=_SHARE_ABOVE_ZERO.schema,
    )
    on_drift: OnDrift = section(OnDrift, "Policy when drift is detected.")

    _threshold = field_validator("threshold")(_SHARE_ABOVE_ZERO.check)


# --- storage ---------------------------------------------------------------------------------


class SecretReference(ApiModel):
    """A Secret in the same namespace, passed to pods as environment variables."""

    name: Name = Field(description="Secret name. The operator never reads it.")


class Storage(ApiModel):
    """Where versions and their artifacts are written."""

    uri: Uri = Field(
        description="Artifact root: pvc://claim/path, s3://bucket/prefix, or a local path. "
        "Versions go to <uri>/versions/v<N>/."
    )
    secret_ref: SecretReference | None = Field(
        default=None,
        description="Credentials (e.g. AWS_ACCESS_KEY_ID) for s3:// or hf:// access.",
    )


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

#: Every cross-field rule on the spec, in the order they are reported.
SPEC_RULES: Final[tuple[Rule[Any], ...]] = (
    _QLORA_NEEDS_GPU,
    *_metric_rules("text-classification"),
    *_metric_rules("causal-lm"),
    _FAIRNESS_NEEDS_GROUPS,
    _GROUPS_NEED_CLASSIFICATION,
    _AUGMENTATION_NEEDS_CLASSIFICATION,
    _MITIGATION_NEEDS_GROUPS,
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


# --- status ----------------------------------------------------------------------------------


class DriftReading(ApiModel):
    """The last drift reading of the served version."""

    version: int = Field(ge=1, description="Version the reading is about.")
    share: Decimal = Field(description="Share of drifted features, 0 to 1, as a string.")
    detected: bool = Field(description="Whether the share is at or above the policy threshold.")
    checked_at: Timestamp = Field(description="When the reading was taken.")
    window_rows: int = Field(default=0, ge=0, description="Requests in the compared window.")
    features: list[str] = Field(
        default_factory=list, max_length=32, description="Names of the drifted features."
    )


class RetrainLedger(ApiModel):
    """Bookkeeping for the drift retrain policy (cooldown and daily cap)."""

    last_triggered_at: Timestamp | None = Field(
        default=None, description="When drift last started a retrain."
    )
    day: str | None = Field(
        default=None, max_length=10, description="UTC day (YYYY-MM-DD) of triggeredToday."
    )
    triggered_today: int = Field(default=0, ge=0, description="Drift retrains started that day.")


class Rollout(ApiModel):
    """A serving rollout in progress."""

    version: int = Field(ge=1, description="Version being rolled out.")
    previous_version: int | None = Field(
        default=None, description="Version to roll back to if this one does not become available."
    )
    started_at: Timestamp = Field(description="When the rollout started.")
    serving_hash: str | None = Field(
        default=None, max_length=64, description="Hash of the serving shape being rolled out."
    )


class ServedShape(ApiModel):
    """The serving shape last seen available: what a failed serving-only change rolls back to."""

    version: int = Field(ge=1, description="Version that was serving.")
    serving_hash: str = Field(max_length=64, description="Hash of the serving shape.")
    serving: Serving = Field(description="spec.serving as it was when it was available.")
    available_at: Timestamp = Field(description="When it was seen available.")


class ModelCustomizationStatus(ApiModel):
    """What the operator observed and decided. Written by the operator only."""

    observed_generation: int | None = Field(
        default=None, description="metadata.generation this status describes."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        description="Ready, Reconciling, Stalled and the domain conditions Trained, Promoted, "
        "Serving, Drifted.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    phase: (
        Literal[
            "Pending",
            "Training",
            "Evaluating",
            "AwaitingApproval",
            "RollingOut",
            "Serving",
            "Ready",
            "Degraded",
            "Failed",
        ]
        | None
    ) = Field(default=None, description="One-word summary for people; tools read conditions.")
    production_version: int | None = Field(default=None, description="Version in production.")
    candidate_version: int | None = Field(
        default=None, description="Version being trained, evaluated or awaiting approval."
    )
    latest_version: int = Field(default=0, ge=0, description="Highest version number created.")
    headline_metric: str | None = Field(
        default=None,
        max_length=64,
        description="The production version's headline metric, e.g. accuracy=0.912.",
    )
    endpoint: str | None = Field(
        default=None, max_length=512, description="In-cluster URL of the serving Service."
    )
    training_hash: str | None = Field(
        default=None, max_length=64, description="Hash of the training-relevant spec last trained."
    )
    drift: DriftReading | None = Field(default=None, description="Last drift reading.")
    retraining: RetrainLedger = section(RetrainLedger, "Drift retrain bookkeeping.")
    rollout: Rollout | None = Field(default=None, description="Rollout in progress, if any.")
    last_available: ServedShape | None = Field(
        default=None, description="The serving shape last seen available (the rollback target)."
    )
    failed_serving_hash: str | None = Field(
        default=None,
        max_length=64,
        description="Hash of a spec.serving whose rollout did not become available: the last "
        "available shape serves until spec.serving changes.",
    )


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
