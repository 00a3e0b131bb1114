"""Approval from Git (`evaluation.approvedVersions`) and from RBAC (the annotation) decide alike;
`serving.pinnedVersion` is the break-glass override and says when it bypassed the gates."""

from __future__ import annotations

import pytest

from bespoke_operator.api import ModelCustomizationSpec, ModelVersion
from bespoke_operator.constants import APPROVAL_ANNOTATION
from bespoke_operator.reconcile import Deploy, approved_versions
from tests.operator.unit.reconcile.test_decide import GOOD, _retrain_with_new_spec, promoted_world
from tests.operator.unit.reconcile.world import InMemoryWorld, actions_of, customization

BAD = {"accuracy": 0.1, "macroF1": 0.1, "evalLoss": 2.0}


@pytest.mark.parametrize(
    ("listed", "annotated", "approve_after_gates", "metrics", "phase", "reason"),
    [
        # Nobody approved: held.
        ([], False, False, GOOD, "AwaitingApproval", "AwaitingApproval"),
        # Approved in Git before the gates decided: promoted as the gates pass.
        ([1], False, False, GOOD, "Promoted", "GatesPassed"),
        # Approved in Git while it waits: promoted then.
        ([1], False, True, GOOD, "Promoted", "Approved"),
        # Approved by annotation while it waits: the same.
        ([], True, True, GOOD, "Promoted", "Approved"),
        # Another version's approval approves nothing here.
        ([2], False, True, GOOD, "AwaitingApproval", "AwaitingApproval"),
        # An approval never overrides the gates.
        ([1], False, False, BAD, "Rejected", "GatesFailed"),
        ([1], True, True, BAD, "Rejected", "GatesFailed"),
    ],
    ids=[
        "none",
        "git-before",
        "git-while-waiting",
        "annotation",
        "other-version",
        "git-failed-gates",
        "both-failed-gates",
    ],
)
def test_approval_from_git_or_rbac(
    listed: list[int],
    annotated: bool,
    approve_after_gates: bool,
    metrics: dict[str, float],
    phase: str,
    reason: str,
) -> None:
    world = InMemoryWorld(customization(evaluation__requireApproval=True))
    if not approve_after_gates:
        world.document["spec"]["evaluation"]["approvedVersions"] = listed
    world.reconcile()
    world.finish(1, **metrics)
    world.reconcile()
    if approve_after_gates:
        world.document["spec"]["evaluation"]["approvedVersions"] = listed
        if annotated:
            world.approved.add(1)
        world.reconcile()
    status = world.versions[1].status
    assert status is not None
    assert (status.phase, status.reason) == (phase, reason)
    decision = world.reconcile()
    deployed = [d.version for d in actions_of(decision, Deploy)]
    assert deployed == ([1] if phase == "Promoted" else [])
    if reason == "Approved":
        assert "Approved" in world.reasons()
    assert "GatesBypassed" not in world.reasons()


def test_approved_versions_reads_the_spec_and_the_annotation() -> None:
    spec = ModelCustomizationSpec.model_validate(
        {**customization(evaluation__approvedVersions=[3, 5])["spec"]}
    )
    world = InMemoryWorld(customization())
    world.reconcile()
    first = world.versions[1]
    annotated = first.model_copy(
        update={
            "metadata": first.metadata.model_copy(
                update={"annotations": {APPROVAL_ANNOTATION: "True"}}
            )
        }
    )
    other = ModelVersion.model_validate(
        {
            **first.model_dump(mode="json", by_alias=True),
            "spec": {**first.spec.model_dump(mode="json", by_alias=True), "version": 2},
        }
    )
    assert approved_versions(spec, [annotated, other]) == {1, 3, 5}
    assert approved_versions(spec, []) == {3, 5}


@pytest.mark.parametrize(
    ("v2_metrics", "pinned", "bypassed"),
    [
        (BAD, 2, True),  # v2 was Rejected: the pin overrides its gates
        ({"accuracy": 0.95, "macroF1": 0.95, "evalLoss": 0.1}, 1, False),  # a rollback
    ],
    ids=["pins-a-rejected-version", "rolls-back-to-one-that-passed"],
)
def test_a_pin_says_when_it_bypassed_the_gates(
    v2_metrics: dict[str, float], pinned: int, bypassed: bool
) -> None:
    world = promoted_world()
    _retrain_with_new_spec(world)
    world.finish(2, **v2_metrics)
    world.reconcile()
    if not bypassed:
        world.become_available()
        world.reconcile()
        assert world.phase(1) == "Retired"
    world.document["spec"]["serving"]["pinnedVersion"] = pinned
    for _ in range(3):
        world.reconcile()
        world.become_available()
    world.reconcile()
    assert world.mc.status is not None
    assert world.mc.status.production_version == pinned
    warnings = [e for e in world.events if e.reason == "GatesBypassed"]
    if bypassed:
        assert len(warnings) == 1  # once, as it becomes production; not on every pass
        assert warnings[0].type == "Warning"
        assert f"v{pinned} is production by spec.serving.pinnedVersion" in warnings[0].message
        assert "Rejected (GatesFailed)" in warnings[0].message
    else:
        assert warnings == []
