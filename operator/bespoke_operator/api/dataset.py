"""`spec.dataset`: the data files, how they are split, their columns, augmentation."""

from __future__ import annotations

from typing import Final, Literal

from pydantic import ConfigDict, Field, ValidationInfo, field_validator, model_validator

from bespoke_operator.api._base import (
    BELOW_ONE,
    OPEN_FRACTION,
    ApiModel,
    Decimal,
    Uri,
    parse_decimal,
    section,
)
from bespoke_operator.api.rules import Rule, raise_violations, schema_rules

__all__ = [
    "Augmentation",
    "Columns",
    "DataSource",
    "Dataset",
    "Split",
]


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
        json_schema_extra=OPEN_FRACTION.schema,
    )
    test_fraction: Decimal = Field(
        default="0.1",
        description="Share of the training data held out for the final evaluation and the gates, "
        "used when dataset.test is not set. A string, strictly between 0 and 1.",
        json_schema_extra=OPEN_FRACTION.schema,
    )
    seed: int = Field(default=42, ge=0, description="Seed of the split, so it is reproducible.")

    _fractions = field_validator("validation_fraction", "test_fraction")(OPEN_FRACTION.check)

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
        json_schema_extra=BELOW_ONE.schema,
    )
    copies: int = Field(
        default=1, ge=1, le=10, description="Augmented copies added per training example."
    )

    _probability = field_validator("probability")(BELOW_ONE.check)


_GROUPS_APART_FROM_COLUMNS: Rule[Dataset] = Rule(
    cel="!has(self.sensitiveColumn) || !has(self.columns) || "
    "(self.sensitiveColumn != self.columns.label && self.sensitiveColumn != self.columns.text)",
    message="`sensitiveColumn` must be a column of its own, not `columns.label` or "
    "`columns.text`: the fairness audit compares groups, which the label or the input cannot be "
    "— name the column that holds the group attribute",
    field_path=".sensitiveColumn",
    check=lambda dataset: (
        dataset.sensitive_column not in (dataset.columns.label, dataset.columns.text)
    ),
)


class Dataset(ApiModel):
    """The data to adapt the model to."""

    model_config = ConfigDict(
        json_schema_extra=schema_rules(_GROUPS_APART_FROM_COLUMNS.as_crd_validation())
    )

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

    @model_validator(mode="after")
    def _rules(self, info: ValidationInfo) -> Dataset:
        raise_violations(self, [_GROUPS_APART_FROM_COLUMNS], info)
        return self
