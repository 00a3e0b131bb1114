"""The trainer's typed config: the JSON the operator (or the local runtime) hands to a run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

from bespoke_trainer.errors import InvalidConfigError

__all__ = [
    "AugmentationConfig",
    "BaseModelConfig",
    "ColumnsConfig",
    "DataSource",
    "DatasetConfig",
    "EarlyStoppingConfig",
    "EvaluationConfig",
    "LoraSettings",
    "MethodConfig",
    "OutputConfig",
    "SplitConfig",
    "TrainerConfig",
    "TrainingConfig",
    "load_config",
    "metric_higher_is_better",
]


def _parse_number(value: object) -> object:
    # The API carries decimals as strings (no floats in Kubernetes specs); accept both.
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a number") from exc
    return value


Number = Annotated[float, BeforeValidator(_parse_number)]
Fraction = Annotated[float, BeforeValidator(_parse_number), Field(ge=0.0, lt=1.0)]

CLASSIFICATION_METRICS = ("accuracy", "macroF1", "calibrationError", "evalLoss")
CAUSAL_LM_METRICS = ("evalLoss", "perplexity", "exactMatch", "tokenF1")
FAIRNESS_METRICS = (
    "demographicParityDifference",
    "equalizedOddsDifference",
    "worstGroupAccuracy",
)
_LOWER_IS_BETTER = {
    "evalLoss",
    "perplexity",
    "calibrationError",
    "demographicParityDifference",
    "equalizedOddsDifference",
}


def metric_higher_is_better(metric: str) -> bool:
    """Whether a larger value of `metric` is an improvement."""
    return metric not in _LOWER_IS_BETTER


AugmentationOp = Literal["deletion", "swap", "insertion"]
_ALL_OPS: tuple[AugmentationOp, ...] = ("deletion", "swap", "insertion")


class _Model(BaseModel):
    # Unknown keys are ignored so the operator can pass API sections that carry
    # Kubernetes-only fields (resources, nodeSelector, ...) unchanged.
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


class BaseModelConfig(_Model):
    """Where the pre-trained model comes from."""

    uri: str = Field(description="hf://org/name, file:///path or a path, pvc://claim/path, s3://")
    revision: str | None = Field(default=None, description="Hub revision (commit, tag, branch)")
    trust_remote_code: bool = False

    @model_validator(mode="after")
    def _remote_code_needs_pin(self) -> BaseModelConfig:
        if self.trust_remote_code and self.uri.startswith("hf://") and not self.revision:
            raise ValueError("`baseModel.trustRemoteCode` requires a pinned `baseModel.revision`")
        return self


class DataSource(_Model):
    """One data file."""

    uri: str
    format: Literal["jsonl", "csv", "parquet"] | None = None


class SplitConfig(_Model):
    """Seeded split used when no validation or test source is given."""

    validation_fraction: Fraction = 0.1
    test_fraction: Fraction = 0.1
    seed: int = 42


class ColumnsConfig(_Model):
    """Column names in the data files."""

    text: str = "text"
    label: str = "label"
    prompt: str = "prompt"
    response: str = "response"


class AugmentationConfig(_Model):
    """Token-level augmentation for small classification data (off by default)."""

    enabled: bool = False
    operations: list[AugmentationOp] = Field(default_factory=lambda: list(_ALL_OPS))
    probability: Fraction = 0.1
    copies: int = Field(default=1, ge=1, le=10)


class DatasetConfig(_Model):
    """Training data, held-out data and how to validate it."""

    train: DataSource
    extra_train: list[DataSource] = Field(default_factory=list)
    validation: DataSource | None = None
    test: DataSource | None = None
    split: SplitConfig = Field(default_factory=SplitConfig)
    columns: ColumnsConfig = Field(default_factory=ColumnsConfig)
    sensitive_column: str | None = None
    augmentation: AugmentationConfig = Field(default_factory=AugmentationConfig)
    min_examples_per_class: int = Field(default=4, ge=1)
    max_overlap_fraction: Fraction = Field(
        default=0.05, description="Largest share of held-out texts also found in train"
    )


class LoraSettings(_Model):
    """Fields mirror PEFT's `LoraConfig`."""

    r: int = Field(default=16, ge=1)
    alpha: int = Field(default=32, ge=1)
    dropout: Fraction = 0.05
    target_modules: list[str] | None = None
    bias: Literal["none", "all", "lora_only"] = "none"
    use_rslora: bool = False
    use_dora: bool = False


class MethodConfig(_Model):
    """Fine-tuning method."""

    type: Literal["lora", "qlora", "full"] = "lora"
    lora: LoraSettings = Field(default_factory=LoraSettings)


class EarlyStoppingConfig(_Model):
    """Stop when `metric` has not improved for `patience` evaluations (off without a metric)."""

    metric: str | None = None
    patience: int = Field(default=3, ge=1)


class TrainingConfig(_Model):
    """The optimisation recipe."""

    epochs: int = Field(default=3, ge=1)
    learning_rate: Annotated[float, BeforeValidator(_parse_number), Field(gt=0.0)] = 2e-4
    batch_size: int = Field(default=16, ge=1)
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    max_sequence_length: int = Field(default=256, ge=8)
    warmup_ratio: Fraction = 0.06
    weight_decay: Annotated[float, BeforeValidator(_parse_number), Field(ge=0.0)] = 0.0
    eval_every_steps: int | None = Field(default=None, ge=1)
    checkpoint_every_steps: int = Field(default=200, ge=1)
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    seed: int = 42
    warm_start: bool = False
    mitigate_bias: bool = False
    gradient_checkpointing: bool = False
    num_threads: int | None = Field(default=None, ge=1, description="CPU threads for torch")
    # Off by default: where length tracks the label (templated data), sorted batches hold one
    # class each and training converges worse (measured: benchmarks/README.md).
    group_by_length: bool = Field(
        default=False,
        description="Batch examples of similar length together (less padding; unpacked only)",
    )
    packing: bool = Field(
        default=True,
        description="causal-lm: pack each batch into padding-free rows, attention per example",
    )
    fused_optimizer: bool = Field(default=True, description="Fused AdamW (CUDA only)")
    bf16_base: bool = Field(
        default=True,
        description="CUDA, lora: frozen base in bf16, adapters and head kept in fp32",
    )
    compile: bool = Field(default=False, description="torch.compile the model")
    liger_kernels: bool = Field(
        default=False, description="Liger kernels (CUDA, Llama/Qwen2/Mistral) when importable"
    )


class EvaluationConfig(_Model):
    """What to measure on the held-out set (gates are the operator's business)."""

    metrics: list[str] = Field(default_factory=list)
    generation_samples: int = Field(default=32, ge=0, description="causal-lm: generated answers")
    max_new_tokens: int = Field(default=64, ge=1)


class OutputConfig(_Model):
    """Where this version's artifacts and the summary go."""

    uri: str = Field(description="The version directory, e.g. <storage>/versions/v3")
    termination_log_path: str = "/dev/termination-log"


class TrainerConfig(_Model):
    """Everything one training run needs."""

    version: int = Field(ge=1)
    base_model: BaseModelConfig
    task: Literal["text-classification", "causal-lm"]
    dataset: DatasetConfig
    method: MethodConfig = Field(default_factory=MethodConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    output: OutputConfig
    warm_start_uri: str | None = None
    champion_uri: str | None = None
    training_hash: str | None = Field(
        default=None,
        max_length=64,
        description="The version's training hash: artifacts or checkpoints found at the output "
        "location from another hash are not this version's",
    )

    @model_validator(mode="after")
    def _combinations(self) -> TrainerConfig:
        task_metrics = (
            CLASSIFICATION_METRICS if self.task == "text-classification" else CAUSAL_LM_METRICS
        )
        allowed = set(task_metrics)
        if self.task == "text-classification" and self.dataset.sensitive_column:
            allowed |= set(FAIRNESS_METRICS)
        metric = self.training.early_stopping.metric
        if metric is not None and metric not in task_metrics:
            raise ValueError(
                f"`training.earlyStopping.metric` {metric!r} is not a {self.task} metric; "
                f"use one of {', '.join(task_metrics)}"
            )
        unknown = [m for m in self.evaluation.metrics if m not in allowed]
        if unknown:
            raise ValueError(
                f"`evaluation.metrics` has {', '.join(unknown)} which {self.task} does not "
                f"compute; available: {', '.join(sorted(allowed))}"
            )
        if self.dataset.sensitive_column and self.task != "text-classification":
            raise ValueError("`dataset.sensitiveColumn` is only supported for text-classification")
        if self.training.mitigate_bias and not self.dataset.sensitive_column:
            raise ValueError("`training.mitigateBias` needs `dataset.sensitiveColumn`")
        if self.dataset.augmentation.enabled and self.task != "text-classification":
            raise ValueError("`dataset.augmentation` is only supported for text-classification")
        if self.training.warm_start and not self.warm_start_uri:
            raise ValueError(
                "`training.warmStart` needs `warmStartUri` (the version to start from)"
            )
        held_out = self.dataset.split.validation_fraction + self.dataset.split.test_fraction
        if held_out >= 0.9:
            raise ValueError(
                "`dataset.split.validationFraction` + `testFraction` must leave data to train on"
            )
        return self


def load_config(path: str | Path) -> TrainerConfig:
    """Read and validate a config file, raising `InvalidConfigError` with one readable line."""
    try:
        raw = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidConfigError(f"cannot read config {path}: {exc.strerror}") from exc
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidConfigError(f"config {path} is not valid JSON: {exc}") from exc
    try:
        return TrainerConfig.model_validate(data)
    except ValidationError as exc:
        raise InvalidConfigError(_one_line(exc)) from exc


def _one_line(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(to_camel(str(p)) if isinstance(p, str) else str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"`{loc}`: {msg}" if loc else msg)
    return "; ".join(parts)
