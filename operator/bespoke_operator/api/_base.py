"""Shared building blocks of the API models: the base class, string formats and section fields."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from bespoke_operator.api.rules import FieldRule, schema_rules

__all__ = [
    "AT_MOST_ONE",
    "BELOW_ONE",
    "DECIMAL_PATTERN",
    "FORMAT_HINTS",
    "OPEN_FRACTION",
    "POSITIVE",
    "QUANTITY_PATTERN",
    "SHARE_ABOVE_ZERO",
    "SIGNED_DECIMAL_PATTERN",
    "URI_PATTERN",
    "URI_SCHEMES",
    "ApiModel",
    "Decimal",
    "Name",
    "Quantity",
    "SignedDecimal",
    "Timestamp",
    "Uri",
    "is_relative_location",
    "parse_decimal",
    "section",
]

# The API carries no floats (CONVENTIONS: Kubernetes API); decimals are strings in these formats.
# Exponents have at most two digits, so every value is a finite double in Python and in CEL
# (`"1e400"` would be infinity in one and a conversion error in the other).
DECIMAL_PATTERN: Final = r"^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]{1,2})?$"
SIGNED_DECIMAL_PATTERN: Final = r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]{1,2})?$"
QUANTITY_PATTERN: Final = r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$"
#: Location schemes; anything else is a path (absolute, or relative to the customization file).
URI_SCHEMES: Final = ("hf://", "pvc://", "s3://", "file://")
URI_PATTERN: Final = r"^((hf|pvc|s3|file)://[^\s]+|/[^\s]*|\.{0,2}/?[^\s:]+)$"
NAME_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

#: How to fix a value that does not match one of the patterns above (used by `bespoke validate`).
FORMAT_HINTS: Final[dict[str, str]] = {
    DECIMAL_PATTERN: 'a non-negative decimal number written as a string, e.g. "0.0002" or "2e-4"',
    SIGNED_DECIMAL_PATTERN: 'a decimal number written as a string, e.g. "0.01" or "-0.5"',
    QUANTITY_PATTERN: 'a Kubernetes quantity, e.g. "500m", "2", "16Gi"',
    URI_PATTERN: "a location such as hf://org/name, pvc://claim/path, s3://bucket/prefix, "
    "file:///abs/path or a relative path",
    NAME_PATTERN: "a lowercase DNS label: letters, digits and '-', alphanumeric at both ends",
}

Decimal = Annotated[str, Field(pattern=DECIMAL_PATTERN, max_length=32)]
SignedDecimal = Annotated[str, Field(pattern=SIGNED_DECIMAL_PATTERN, max_length=32)]
Quantity = Annotated[str, Field(pattern=QUANTITY_PATTERN, max_length=32)]
_FILE_URI_RULE: Final[FieldRule[str]] = FieldRule(
    "!self.startsWith('file://') || self.startsWith('file:///')",
    "a file:// location takes an absolute path: file:///abs/path (three slashes); "
    "write a relative path without file://",
    lambda uri: not uri.startswith("file://") or uri.startswith("file:///"),
)

# `..` would climb out of the claim, bucket or directory the location names. Relative paths
# (local runs) are resolved against the customization file's folder, where `../data` is usual.
_PARENT_SEGMENT: Final = "(^|/)[.][.](/|$)"
_NO_PARENT_SEGMENT_RULE: Final[FieldRule[str]] = FieldRule(
    f"!self.matches('^([a-z0-9]+://|/)') || !self.matches('{_PARENT_SEGMENT}')",
    "a pvc://, s3://, hf://, file:// or absolute location must not contain `..` segments, "
    "which would reach outside the claim, bucket or folder it names — write the path without them",
    lambda uri: (
        re.search("^([a-z0-9]+://|/)", uri) is None or re.search(_PARENT_SEGMENT, uri) is None
    ),
)


Uri = Annotated[
    str,
    Field(
        pattern=URI_PATTERN,
        min_length=1,
        max_length=1024,
        json_schema_extra=schema_rules(
            _FILE_URI_RULE.validation, _NO_PARENT_SEGMENT_RULE.validation
        ),
    ),
    AfterValidator(_FILE_URI_RULE.check),
    AfterValidator(_NO_PARENT_SEGMENT_RULE.check),
]
Name = Annotated[str, Field(pattern=NAME_PATTERN, min_length=1, max_length=63)]
# Timestamps come from the API server as RFC 3339 strings, so they are parsed leniently.
Timestamp = Annotated[datetime, Field(strict=False)]


def is_relative_location(uri: str) -> bool:
    """A path with no scheme that is not absolute: relative to the customization file."""
    return not uri.startswith(URI_SCHEMES) and not uri.startswith("/")


def parse_decimal(value: str) -> float:
    """Turns an API decimal string into a float for arithmetic inside the operator."""
    return float(value)


class ApiModel(BaseModel):
    """Base of every API model: camelCase on the wire, unknown fields rejected, types exact.

    Strict mode matches what the API server accepts: `epochs: "3"` is as wrong here as it is
    for the CRD's `type: integer`, so the two can never disagree on a file.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        strict=True,
        frozen=True,
        use_attribute_docstrings=False,
    )


def section(model: type[ApiModel], description: str) -> Any:
    """A field holding a whole optional section whose every field has a default.

    The CRD declares `default: {}` for it, so the API server fills in the nested defaults and
    `kubectl get -o yaml` shows the effective configuration.
    """
    return Field(
        default_factory=model,
        description=description,
        json_schema_extra={"default": {}},
    )


def _decimal_range(cel: str, message: str, holds: Callable[[float], bool]) -> FieldRule[str]:
    """A range for a decimal-string field (the decimal pattern already rules out negatives)."""
    return FieldRule(cel, message, lambda value: holds(parse_decimal(value)))


OPEN_FRACTION: Final = _decimal_range(
    "double(self) > 0.0 && double(self) < 1.0",
    'must be a fraction strictly between 0 and 1, written as a string, e.g. "0.1"',
    lambda x: 0.0 < x < 1.0,
)
BELOW_ONE: Final = _decimal_range(
    "double(self) < 1.0",
    'must be from 0 up to (not including) 1, written as a string, e.g. "0.1"',
    lambda x: x < 1.0,
)
AT_MOST_ONE: Final = _decimal_range(
    "double(self) <= 1.0",
    'must be a share from 0 to 1, written as a string, e.g. "0.1" (not a percentage)',
    lambda x: x <= 1.0,
)
SHARE_ABOVE_ZERO: Final = _decimal_range(
    "double(self) > 0.0 && double(self) <= 1.0",
    'must be a share above 0 and at most 1, written as a string, e.g. "0.5"',
    lambda x: 0.0 < x <= 1.0,
)
POSITIVE: Final = _decimal_range(
    "double(self) > 0.0",
    'must be above 0, written as a string, e.g. "2e-4"',
    lambda x: x > 0.0,
)
