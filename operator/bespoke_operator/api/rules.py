"""Cross-field validation rules, each written once as CEL for the CRD and as Python for the models.

A rule carries one message. The CRD generator puts the CEL expression and the message into
`x-kubernetes-validations`; the pydantic models run the Python check and raise the same message,
so `bespoke validate`, the local runtime and the API server reject a file for the same reason in
the same words. `tests/operator/unit/api/test_schema_agrees.py` evaluates both forms over many
specs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar, cast

from pydantic import JsonValue, ValidationInfo
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

__all__ = [
    "RECORDED",
    "RULE_ERROR_TYPE",
    "FieldRule",
    "Rule",
    "RuleViolation",
    "judged",
    "raise_violations",
    "schema_rules",
]

RULE_ERROR_TYPE = "bespoke_rule"

#: Validation context for a spec recorded in the past (a ModelVersion's snapshot): it is read as
#: it was written, not judged again by rules added since, which could otherwise hide history.
RECORDED: Final[dict[str, bool]] = {"bespoke.dev/recorded": True}


def judged(info: ValidationInfo) -> bool:
    """Whether the rules apply: always, except to a recorded spec."""
    return not (isinstance(info.context, dict) and info.context.get("bespoke.dev/recorded"))


Subject = TypeVar("Subject")


@dataclass(frozen=True)
class RuleViolation:
    """One broken rule: where (relative to the object holding the rule) and why."""

    field_path: str
    message: str


@dataclass(frozen=True)
class Rule(Generic[Subject]):
    """A rule over an object of the API.

    `cel` sees the object as `self` (and `oldSelf` for transition rules); `check` sees the parsed
    model and returns True when the object is valid. `field_path` is relative to the object, in
    the CRD's `fieldPath` syntax (`.training.resources.gpus`).
    """

    cel: str
    message: str
    field_path: str
    check: Callable[[Subject], bool]

    def as_crd_validation(self) -> dict[str, str]:
        """The `x-kubernetes-validations` entry for this rule."""
        entry = {"rule": self.cel, "message": self.message, "reason": "FieldValueInvalid"}
        if self.field_path:
            entry["fieldPath"] = self.field_path
        return entry

    def violation(self, subject: Subject) -> RuleViolation | None:
        """The violation this rule finds on `subject`, if any."""
        if self.check(subject):
            return None
        return RuleViolation(self.field_path, self.message)


Value = TypeVar("Value")


class FieldRule(Generic[Value]):
    """A rule on one field's value, written once as CEL (on `self`) and once as Python.

    `schema` goes into the field's `json_schema_extra`; `check` is its pydantic validator
    (`field_validator(...)(rule.check)` or `AfterValidator(rule.check)`), so `bespoke validate`
    and the API server reject a value with the same message. A recorded spec is not judged.
    """

    def __init__(self, cel: str, message: str, holds: Callable[[Value], bool]) -> None:
        self.validation: dict[str, str] = {"rule": cel, "message": message}
        self.schema: JsonDict = schema_rules(self.validation)

        # A plain function, not a method: pydantic unwraps bound methods it is given.
        def check(value: Value, info: ValidationInfo) -> Value:
            if value is not None and judged(info) and not holds(value):
                raise ValueError(message)
            return value

        self.check = check


def schema_rules(*rules: Mapping[str, str]) -> JsonDict:
    """A `json_schema_extra` value that puts CEL rules into the generated CRD."""
    return {"x-kubernetes-validations": cast("list[JsonValue]", [dict(r) for r in rules])}


def raise_violations(subject: Any, rules: Iterable[Rule[Any]], info: ValidationInfo) -> None:
    """Raises one pydantic error carrying every violated rule, so no problem hides another."""
    if not judged(info):
        return
    found = [v for rule in rules if (v := rule.violation(subject)) is not None]
    if not found:
        return
    raise PydanticCustomError(
        RULE_ERROR_TYPE,
        "{summary}",
        {
            "summary": "; ".join(f"{v.field_path.lstrip('.')}: {v.message}" for v in found),
            "violations": tuple((v.field_path, v.message) for v in found),
        },
    )
