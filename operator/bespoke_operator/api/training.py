"""`spec.method` and `spec.training`: how the model is adapted and where the trainer runs."""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import Field, field_validator

from bespoke_operator.api._base import BELOW_ONE, POSITIVE, ApiModel, Decimal, Quantity, section
from bespoke_operator.api.rules import FieldRule
from bespoke_operator.api.tasks import MetricName

__all__ = [
    "EarlyStopping",
    "LoraSettings",
    "Method",
    "Resources",
    "Toleration",
    "Training",
]


_TARGET_MODULES_RULE: Final[FieldRule[list[str]]] = FieldRule(
    "size(self) > 0",
    "`targetModules` must name at least one module — or leave it out to adapt every linear "
    "layer (PEFT's 'all-linear')",
    lambda modules: len(modules) > 0,
)


class LoraSettings(ApiModel):
    """LoRA adapter settings; the fields mirror PEFT's `LoraConfig`."""

    r: int = Field(default=16, ge=1, le=1024, description="Rank of the update matrices (`r`).")
    alpha: int = Field(default=32, ge=1, le=4096, description="Scaling numerator (`lora_alpha`).")
    dropout: Decimal = Field(
        default="0.05",
        description="Dropout on the adapter input (`lora_dropout`), as a string from 0 up to 1.",
        json_schema_extra=BELOW_ONE.schema,
    )
    target_modules: list[Annotated[str, Field(max_length=128)]] | None = Field(
        default=None,
        max_length=64,
        description="Module names to adapt (`target_modules`). Omitted: every linear layer "
        "except the output head (PEFT's 'all-linear'). Not empty.",
        json_schema_extra=_TARGET_MODULES_RULE.schema,
    )
    bias: Literal["none", "all", "lora_only"] = Field(
        default="none", description="Which biases to train (`bias`)."
    )
    use_rslora: bool = Field(default=False, description="Rank-stabilized scaling (`use_rslora`).")
    use_dora: bool = Field(default=False, description="Weight-decomposed LoRA (`use_dora`).")

    _dropout = field_validator("dropout")(BELOW_ONE.check)
    _target_modules = field_validator("target_modules")(_TARGET_MODULES_RULE.check)


class Method(ApiModel):
    """How the model is adapted."""

    type: Literal["lora", "qlora", "full"] = Field(
        default="lora",
        description="lora: train a low-rank adapter. qlora: LoRA over a 4-bit quantized base "
        "(needs a GPU). full: train every weight.",
    )
    lora: LoraSettings = section(LoraSettings, "Adapter settings for lora and qlora.")


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
    ephemeral_storage: Quantity = Field(
        default="50Gi",
        description="Scratch space: the size limit of the pod's /tmp (downloaded models, the "
        "Hugging Face cache, checkpoints of non-PVC storage) and its ephemeral-storage request.",
    )


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
        json_schema_extra=POSITIVE.schema,
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
        json_schema_extra=BELOW_ONE.schema,
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
    startup_deadline_seconds: int = Field(
        default=300,
        ge=30,
        description="A trainer pod that cannot start (image pull, configuration or scheduling "
        "error) for this long fails its attempt with the kubelet's or scheduler's reason.",
    )
    retry_limit: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Retries of a failed trainer (preemptions do not count).",
    )

    _learning_rate = field_validator("learning_rate")(POSITIVE.check)
    _warmup_ratio = field_validator("warmup_ratio")(BELOW_ONE.check)
