"""Production is never stranded: outages, failed serving changes and the conditions GitOps reads.

Each test plays one fault a real cluster produces against `decide`, through the in-memory world:
an outage past the rollout deadline, a bad serving image, a deleted Deployment, a replicas
change during an outage, a new version or a first version that never becomes available.
"""

from __future__ import annotations

from typing import Any

from bespoke_operator.reconcile import Deploy, DriftReport, Event, TrainerRun, TrainerSummary
from bespoke_operator.reconcile.hashing import serving_hash

from .world import InMemoryWorld, actions_of, customization

GOOD = {"accuracy": 0.93, "macroF1": 0.91, "evalLoss": 0.2}
DEADLINE = 600  # the example's serving.rolloutDeadlineSeconds (the default)


def promoted_world(**changes: Any) -> InMemoryWorld:
    """v1 trained, passed the gates and serves."""
    world = InMemoryWorld(customization(**changes))
    world.reconcile()
    world.finish(1, **GOOD)
    world.reconcile()
    world.become_available()
    world.reconcile()
    assert world.last is not None
    assert world.last.status.phase == "Ready"
    return world


def deployed(world: InMemoryWorld) -> list[tuple[int, str | None, int]]:
    """(version, image, replicas) of each Deploy of the last pass."""
    assert world.last is not None
    return [
        (d.version, d.serving.image, d.serving.replicas) for d in actions_of(world.last, Deploy)
    ]


def condition(world: InMemoryWorld, type_: str) -> tuple[str, str]:
    """(status, reason) of a condition."""
    assert world.status is not None
    found = next(c for c in world.status["conditions"] if c["type"] == type_)
    return found["status"], found["reason"]


def events(world: InMemoryWorld) -> list[Event]:
    assert world.last is not None
    return actions_of(world.last, Event)


def assert_kstatus_consistent(world: InMemoryWorld) -> None:
    """kstatus reads Reconciling before Stalled: both True at once reads as InProgress."""
    assert not (
        condition(world, "Reconciling")[0] == "True" and condition(world, "Stalled")[0] == "True"
    )


def test_outage_past_the_deadline_is_degraded_never_failed_and_recovers() -> None:
    world = promoted_world()
    world.outage()
    world.reconcile()
    assert world.last is not None
    assert world.last.status.phase == "Degraded"
    assert condition(world, "Degraded") == ("True", "ServingUnavailable")
    assert condition(world, "Ready")[0] == "False"
    assert condition(world, "Stalled")[0] == "False"
    assert condition(world, "Reconciling")[0] == "False"
    assert [e.reason for e in events(world)] == ["Degraded"]
    assert deployed(world) == [(1, None, 1)]  # kept applied
    for _ in range(3):  # far past the rollout deadline
        world.tick(DEADLINE)
        world.reconcile()
        assert world.phase(1) == "Promoted"
        assert world.last.status.production_version == 1
        assert deployed(world) == [(1, None, 1)]
        assert events(world) == []  # one Degraded event per outage, not one per pass
        assert world.last.status.phase == "Degraded"
    assert "RolledBack" not in world.reasons()
    world.become_available()
    world.reconcile()
    assert world.last.status.phase == "Ready"
    assert condition(world, "Degraded") == ("False", "AsExpected")
    assert condition(world, "Ready") == ("True", "Serving")
    assert [e.reason for e in events(world)] == ["Recovered"]


def test_a_bad_image_is_rolled_back_to_the_last_available_shape_then_reverted() -> None:
    world = promoted_world()
    world.document["spec"]["serving"]["image"] = "registry.example/serving:typo"
    world.document["metadata"]["generation"] = 2
    world.reconcile()
    assert deployed(world) == [(1, "registry.example/serving:typo", 1)]
    assert world.last is not None
    assert world.last.status.phase == "RollingOut"
    assert condition(world, "Reconciling") == ("True", "RollingOut")
    assert condition(world, "Ready")[0] == "False"  # the new generation is not there yet
    assert condition(world, "Serving")[0] == "True"  # the old pods still serve
    world.tick(DEADLINE + 1)
    world.reconcile()
    assert deployed(world) == [(1, None, 1)]  # the last shape that was available
    assert world.phase(1) == "Promoted"  # no version is failed for a serving change
    rolled_back = [e for e in events(world) if e.reason == "RolledBack"]
    assert len(rolled_back) == 1
    assert "registry.example/serving:typo" in rolled_back[0].message
    status = world.last.status
    failed = serving_hash(world.mc.spec.serving)
    assert status.failed_serving_hash == failed
    assert status.last_available is not None
    assert status.last_available.serving.image is None
    assert condition(world, "Stalled") == ("True", "RolloutFailed")
    assert condition(world, "Reconciling")[0] == "False"
    # The old shape becomes available again; the bad image is not tried again.
    world.become_available()
    for _ in range(2):
        world.tick(DEADLINE + 1)
        world.reconcile()
        assert deployed(world) == [(1, None, 1)]
        assert condition(world, "Stalled") == ("True", "RolloutFailed")
        assert condition(world, "Serving")[0] == "True"
    # Reverting the spec is all it takes.
    del world.document["spec"]["serving"]["image"]
    world.document["metadata"]["generation"] = 3
    world.reconcile()
    assert world.last.status.phase == "Ready"
    assert world.last.status.failed_serving_hash is None
    assert condition(world, "Ready") == ("True", "Serving")
    assert condition(world, "Stalled")[0] == "False"
    assert deployed(world) == [(1, None, 1)]


def test_a_fixed_image_after_a_failed_one_rolls_out() -> None:
    world = promoted_world()
    world.document["spec"]["serving"]["image"] = "registry.example/serving:typo"
    world.reconcile()
    world.tick(DEADLINE + 1)
    world.reconcile()
    world.document["spec"]["serving"]["image"] = "registry.example/serving:2"
    world.reconcile()
    assert deployed(world) == [(1, "registry.example/serving:2", 1)]
    world.become_available()
    world.reconcile()
    assert world.last is not None
    assert world.last.status.phase == "Ready"
    last = world.last.status.last_available
    assert last is not None
    assert last.serving.image == "registry.example/serving:2"


def test_a_deleted_deployment_is_recreated_and_nothing_fails() -> None:
    world = promoted_world()
    world.delete_deployment()
    world.reconcile()
    assert deployed(world) == [(1, None, 1)]
    assert world.serving is not None  # the world applied the Deploy: recreated
    assert condition(world, "Degraded") == ("True", "ServingUnavailable")
    degraded = next(c for c in world.mc.status.conditions if c.type == "Degraded")  # type: ignore[union-attr]
    assert "missing" in degraded.message
    world.tick(DEADLINE * 2)
    world.reconcile()
    assert world.phase(1) == "Promoted"
    assert deployed(world) == [(1, None, 1)]
    world.become_available()
    world.reconcile()
    assert world.last is not None
    assert world.last.status.phase == "Ready"


def test_a_replicas_change_during_an_outage_is_applied_not_rolled_back() -> None:
    world = promoted_world()
    world.outage()
    world.reconcile()
    world.document["spec"]["serving"]["replicas"] = 3
    world.document["metadata"]["generation"] = 2
    world.reconcile()
    assert deployed(world) == [(1, None, 3)]
    world.tick(DEADLINE + 1)
    world.reconcile()
    # What it would roll back to was unavailable too: the change stays applied, production is
    # Degraded (not Stalled: no spec change can be blamed), nothing is failed.
    assert deployed(world) == [(1, None, 3)]
    assert world.phase(1) == "Promoted"
    assert world.last is not None
    assert world.last.status.phase == "Degraded"
    assert condition(world, "Stalled")[0] == "False"
    assert condition(world, "Reconciling")[0] == "False"
    assert "RolledBack" not in world.reasons()
    world.become_available()
    world.reconcile()
    assert world.last.status.phase == "Ready"
    last = world.last.status.last_available
    assert last is not None
    assert last.serving.replicas == 3
    assert world.last.status.rollout is None


def test_a_replicas_change_that_never_becomes_available_is_rolled_back() -> None:
    world = promoted_world()
    world.document["spec"]["serving"]["replicas"] = 40
    world.reconcile()
    assert deployed(world) == [(1, None, 40)]
    world.tick(DEADLINE + 1)
    world.reconcile()
    assert deployed(world) == [(1, None, 1)]
    assert "RolledBack" in world.reasons()
    assert condition(world, "Stalled") == ("True", "RolloutFailed")


def test_a_new_version_that_never_becomes_available_rolls_back_to_the_previous() -> None:
    world = promoted_world()
    world.document["spec"]["training"]["epochs"] = 6
    world.reconcile()
    world.finish(2, accuracy=0.95, macroF1=0.95)
    world.reconcile()
    assert deployed(world) == [(2, None, 1)]
    world.tick(DEADLINE + 1)
    world.reconcile()
    assert world.phase(2) == "Failed"
    assert world.versions[2].status.reason == "RolloutFailed"  # type: ignore[union-attr]
    assert deployed(world) == [(1, None, 1)]
    world.become_available()
    world.reconcile()
    assert world.last is not None
    assert world.last.status.phase == "Failed"  # Stalled: what the spec asked for failed
    assert world.last.status.production_version == 1
    assert_kstatus_consistent(world)


def test_a_first_version_that_never_becomes_available_stays_applied_and_recovers() -> None:
    world = InMemoryWorld(customization(serving__image="registry.example/serving:typo"))
    world.reconcile()
    world.finish(1, **GOOD)
    world.reconcile()
    world.tick(DEADLINE + 1)
    world.reconcile()
    # Not failed: the version is good, the serving image is not; the Deployment stays.
    assert world.phase(1) == "Promoted"
    assert deployed(world) == [(1, "registry.example/serving:typo", 1)]
    assert condition(world, "Stalled") == ("True", "RolloutFailed")
    assert condition(world, "Reconciling")[0] == "False"
    world.document["spec"]["serving"]["image"] = "registry.example/serving:1"
    world.reconcile()
    assert deployed(world) == [(1, "registry.example/serving:1", 1)]
    assert condition(world, "Stalled")[0] == "False"
    assert condition(world, "Reconciling")[0] == "True"
    world.become_available()
    world.reconcile()
    assert world.last is not None
    assert world.last.status.phase == "Ready"
    assert world.last.status.production_version == 1


def _drift(world: InMemoryWorld, share: float) -> None:
    world.drift = DriftReport(
        version=1,
        checked_at=world.now,
        drift_share=share,
        dataset_drift=True,
        window_rows=500,
    )


def test_a_drift_retrain_keeps_ready_true_and_shows_training() -> None:
    world = promoted_world(monitoring__onDrift={"action": "retrain", "cooldownSeconds": 0})
    _drift(world, 0.9)
    world.reconcile()
    assert world.phase(2) == "Training"
    assert condition(world, "Ready") == ("True", "Serving")
    assert condition(world, "Reconciling")[0] == "False"
    assert condition(world, "Training") == ("True", "Training")
    # Its rollout too is the operator's own work: the old pods serve through it.
    world.drift = None
    world.finish(2, accuracy=0.95, macroF1=0.95)
    world.reconcile()
    assert deployed(world) == [(2, None, 1)]
    assert condition(world, "Ready")[0] == "True"
    assert condition(world, "Reconciling")[0] == "False"
    assert condition(world, "Training")[0] == "False"
    world.become_available()
    world.reconcile()
    assert world.last is not None
    assert world.last.status.production_version == 2


def test_a_spec_change_retrain_is_reconciling_and_not_ready() -> None:
    world = promoted_world()
    world.document["spec"]["training"]["epochs"] = 6
    world.document["metadata"]["generation"] = 2
    world.reconcile()
    assert condition(world, "Reconciling")[0] == "True"
    assert condition(world, "Ready")[0] == "False"
    assert condition(world, "Training")[0] == "True"


def test_a_training_failure_clears_reconciling_beside_stalled() -> None:
    world = InMemoryWorld(customization(training__retryLimit=0))
    world.reconcile()
    assert condition(world, "Reconciling")[0] == "True"
    bad = TrainerSummary(outcome="Failed", reason="InvalidData", message="x", exitCode=3)
    world.finish(1, TrainerRun(1, 1, "Failed", summary=bad))
    world.reconcile()
    assert condition(world, "Stalled") == ("True", "InvalidData")
    assert condition(world, "Reconciling") == ("False", "InvalidData")
    assert_kstatus_consistent(world)


def test_a_first_version_awaiting_approval_is_suspended_not_in_progress() -> None:
    world = InMemoryWorld(customization(evaluation__requireApproval=True))
    world.reconcile()
    world.finish(1, **GOOD)
    world.reconcile()
    assert world.last is not None
    assert world.last.status.phase == "AwaitingApproval"
    assert condition(world, "AwaitingApproval") == ("True", "AwaitingApproval")
    assert condition(world, "Ready") == ("False", "AwaitingApproval")
    assert condition(world, "Reconciling")[0] == "False"
    assert condition(world, "Stalled")[0] == "False"


def test_versions_carry_a_ready_condition_whose_reason_is_their_phase() -> None:
    world = promoted_world()
    world.document["spec"]["training"]["epochs"] = 6
    world.reconcile()
    world.finish(2, accuracy=0.2, macroF1=0.2)
    world.reconcile()

    def ready(number: int) -> tuple[str, str]:
        status = world.versions[number].status
        assert status is not None
        found = next(c for c in status.conditions if c.type == "Ready")
        return found.status, found.reason

    assert ready(1) == ("True", "Promoted")
    assert ready(2) == ("False", "Rejected")


def test_a_rollout_whose_previous_version_was_deleted_by_hand_stays_applied() -> None:
    world = promoted_world()
    world.document["spec"]["training"]["epochs"] = 6
    world.reconcile()
    world.finish(2, accuracy=0.95, macroF1=0.95)
    world.reconcile()
    assert deployed(world) == [(2, None, 1)]
    del world.versions[1]  # kubectl delete modelversion sentiment-v1
    world.tick(DEADLINE + 1)
    world.reconcile()
    # Nothing to go back to: v2 stays applied and is not failed.
    assert deployed(world) == [(2, None, 1)]
    assert world.phase(2) == "Promoted"
    world.become_available()
    world.reconcile()
    assert world.last is not None
    assert world.last.status.production_version == 2
    assert world.last.status.phase == "Ready"


def test_a_spec_change_whose_training_fails_stalls_while_the_old_version_serves() -> None:
    world = promoted_world()
    world.document["spec"]["training"]["epochs"] = 6
    world.document["metadata"]["generation"] = 2
    world.reconcile()
    oom = TrainerSummary(outcome="Failed", reason="OutOfMemory", message="CUDA OOM", exitCode=5)
    world.finish(2, TrainerRun(2, 1, "Failed", summary=oom))
    world.reconcile()
    assert world.phase(2) == "Failed"
    assert condition(world, "Stalled") == ("True", "OutOfMemory")
    assert condition(world, "Ready") == ("False", "OutOfMemory")
    assert condition(world, "Reconciling") == ("False", "OutOfMemory")
    # v1 still serves: production and the Serving condition say so.
    assert world.last is not None
    assert world.last.status.production_version == 1
    assert condition(world, "Serving")[0] == "True"


def test_a_spec_change_whose_version_is_rejected_stalls_while_the_old_version_serves() -> None:
    world = promoted_world()
    world.document["spec"]["training"]["epochs"] = 6
    world.reconcile()
    world.finish(2, accuracy=0.1, macroF1=0.1, evalLoss=2.0)
    world.reconcile()
    assert world.phase(2) == "Rejected"
    assert condition(world, "Stalled") == ("True", "GatesFailed")
    assert condition(world, "Ready") == ("False", "GatesFailed")


def test_a_spec_change_whose_rollout_fails_stalls_after_the_rollback() -> None:
    world = promoted_world()
    world.document["spec"]["training"]["epochs"] = 6
    world.reconcile()
    world.finish(2, accuracy=0.95, macroF1=0.95)
    world.reconcile()
    world.tick(DEADLINE + 1)
    world.reconcile()
    world.become_available()
    world.reconcile()
    assert world.last is not None
    assert world.last.status.production_version == 1
    assert condition(world, "Stalled") == ("True", "RolloutFailed")
    assert condition(world, "Ready") == ("False", "RolloutFailed")
    assert_kstatus_consistent(world)


def test_a_drift_retrain_that_fails_keeps_ready_true() -> None:
    world = promoted_world(monitoring__onDrift={"action": "retrain", "cooldownSeconds": 0})
    _drift(world, 0.9)
    world.reconcile()
    world.drift = None
    oom = TrainerSummary(outcome="Failed", reason="OutOfMemory", message="CUDA OOM", exitCode=5)
    world.finish(2, TrainerRun(2, 1, "Failed", summary=oom))
    world.reconcile()
    assert world.phase(2) == "Failed"
    assert condition(world, "Ready") == ("True", "Serving")
    assert condition(world, "Stalled")[0] == "False"


def _new_version_rolled_back(world: InMemoryWorld) -> None:
    world.document["spec"]["training"]["epochs"] = 6
    world.reconcile()
    world.finish(2, accuracy=0.95, macroF1=0.95)
    world.reconcile()
    world.tick(DEADLINE + 1)
    world.reconcile()
    assert deployed(world) == [(1, None, 1)]
    assert "RolledBack" in world.reasons()


def test_a_rollback_in_progress_is_not_an_outage() -> None:
    world = promoted_world()
    _new_version_rolled_back(world)
    # The rolled-back Deployment settles: old pods ready, new ones not yet.
    world.reconcile()
    assert condition(world, "Degraded")[0] == "False"
    world.become_available()
    world.reconcile()
    assert "Degraded" not in world.reasons()
    assert "Recovered" not in world.reasons()
    assert world.last is not None
    assert world.last.status.rollout is None
    assert world.last.status.production_version == 1


def test_a_rollback_that_never_becomes_available_is_an_outage() -> None:
    world = promoted_world()
    _new_version_rolled_back(world)
    world.outage()
    world.tick(DEADLINE + 1)
    world.reconcile()
    assert condition(world, "Degraded") == ("True", "ServingUnavailable")
    assert deployed(world) == [(1, None, 1)]


def test_a_shape_rollback_in_progress_is_not_an_outage() -> None:
    world = promoted_world()
    world.document["spec"]["serving"]["replicas"] = 40
    world.reconcile()
    world.tick(DEADLINE + 1)
    world.reconcile()
    assert deployed(world) == [(1, None, 1)]
    world.reconcile()
    assert condition(world, "Degraded")[0] == "False"
    assert "Degraded" not in world.reasons()


def test_a_drift_retrain_rolled_back_keeps_ready_true_on_the_way_back() -> None:
    world = promoted_world(monitoring__onDrift={"action": "retrain", "cooldownSeconds": 0})
    _drift(world, 0.9)
    world.reconcile()
    world.drift = None
    world.finish(2, accuracy=0.95, macroF1=0.95)
    world.reconcile()
    world.tick(DEADLINE + 1)
    world.reconcile()
    assert deployed(world) == [(1, None, 1)]
    assert condition(world, "Ready") == ("True", "Serving")
    assert condition(world, "Reconciling")[0] == "False"
    assert condition(world, "Degraded")[0] == "False"


def test_a_new_version_rolled_out_during_an_outage_is_not_blamed() -> None:
    world = promoted_world()
    world.outage()
    world.reconcile()
    assert condition(world, "Degraded")[0] == "True"
    world.document["spec"]["training"]["epochs"] = 6
    world.reconcile()
    world.finish(2, accuracy=0.95, macroF1=0.95)
    world.reconcile()
    assert deployed(world) == [(2, None, 1)]
    world.tick(DEADLINE + 1)
    world.reconcile()
    # v1 was down too: v2 stays applied and is not failed; production is degraded.
    assert world.phase(2) == "Promoted"
    assert deployed(world) == [(2, None, 1)]
    assert condition(world, "Degraded")[0] == "True"
    world.become_available()
    world.reconcile()
    assert world.last is not None
    assert world.last.status.production_version == 2
    assert world.last.status.phase == "Ready"


def test_a_new_version_replacing_one_mid_rollout_rolls_back_to_production() -> None:
    world = promoted_world()
    world.document["spec"]["training"]["epochs"] = 6
    world.reconcile()
    world.finish(2, accuracy=0.95, macroF1=0.95)
    world.reconcile()
    assert deployed(world) == [(2, None, 1)]
    # v3 arrives while v2 rolls out (v1's pods still serve): v3 can be blamed.
    world.document["spec"]["training"]["epochs"] = 7
    world.reconcile()
    world.finish(3, accuracy=0.96, macroF1=0.96)
    world.reconcile()
    assert deployed(world) == [(3, None, 1)]
    world.tick(DEADLINE + 1)
    world.reconcile()
    assert world.phase(3) == "Failed"
    assert deployed(world) == [(1, None, 1)]


def test_rollback_messages_give_the_deadline_in_seconds_past_a_day() -> None:
    deadline = 86_400 + DEADLINE
    world = promoted_world(serving__rolloutDeadlineSeconds=deadline)
    world.document["spec"]["training"]["epochs"] = 6
    world.reconcile()
    world.finish(2, accuracy=0.95, macroF1=0.95)
    world.reconcile()
    world.tick(deadline + 1)
    world.reconcile()
    rolled_back = next(e for e in events(world) if e.reason == "RolledBack")
    assert f"within {deadline}s" in rolled_back.message
    assert f"within {deadline}s" in (world.versions[2].status.message or "")  # type: ignore[union-attr]
