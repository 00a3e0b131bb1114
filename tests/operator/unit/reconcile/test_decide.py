"""`decide` over whole lifecycles: versions, trainers, gates, approval, rollout, drift, history."""

from __future__ import annotations

import pytest

from bespoke_operator.api import ModelCustomization, ModelCustomizationSpec
from bespoke_operator.reconcile import (
    CreateVersion,
    DeleteVersion,
    Deploy,
    DriftReport,
    StartTrainer,
    StopTrainer,
    TrainerRun,
    TrainerSummary,
    Undeploy,
    stalled_status,
    training_hash,
)

from .world import START, InMemoryWorld, actions_of, customization

GOOD = {"accuracy": 0.93, "macroF1": 0.91, "evalLoss": 0.2}
ARTIFACTS_V1 = "pvc://bespoke-artifacts/sentiment/versions/v1"


def promoted_world(**changes: object) -> InMemoryWorld:
    """A world where v1 trained, passed the gates and serves."""
    world = InMemoryWorld(customization(**changes))
    world.reconcile()
    world.finish(1, **GOOD)
    world.reconcile()
    world.become_available()
    world.reconcile()
    return world


def test_first_reconcile_creates_version_one_and_its_trainer() -> None:
    world = InMemoryWorld(customization())
    decision = world.reconcile()
    created = actions_of(decision, CreateVersion)
    assert [c.version.metadata.name for c in created] == ["sentiment-v1"]
    version = created[0].version
    assert version.spec.trigger == "Initial"
    assert version.spec.artifact_uri == "pvc://bespoke-artifacts/sentiment/versions/v1"
    assert version.spec.snapshot == world.mc.spec
    assert actions_of(decision, StartTrainer) == [StartTrainer(1, 1)]
    status = decision.status
    assert status.phase == "Training"
    assert status.observed_generation == 1
    assert status.candidate_version == 1
    assert world.condition("Reconciling") == "True"
    assert world.condition("Ready") == "False"
    assert world.condition("Stalled") == "False"


def test_running_trainer_is_not_started_twice() -> None:
    world = InMemoryWorld(customization())
    world.reconcile()
    decision = world.reconcile()
    assert actions_of(decision, StartTrainer) == []
    assert actions_of(decision, CreateVersion) == []
    assert world.phase(1) == "Training"


def test_passing_gates_promote_deploy_and_become_ready() -> None:
    world = InMemoryWorld(customization())
    world.reconcile()
    world.finish(1, **GOOD)
    decision = world.reconcile()
    assert world.phase(1) == "Promoted"
    [deploy] = actions_of(decision, Deploy)
    assert (deploy.version, deploy.artifact_uri) == (1, ARTIFACTS_V1)
    assert deploy.serving.env["BESPOKE_MODEL_URI"] == ARTIFACTS_V1
    assert decision.status.phase == "RollingOut"
    gates = world.versions[1].status.gates  # type: ignore[union-attr]
    assert {g.name: g.passed for g in gates} == {
        "accuracy>=": True,
        "macroF1>=": True,
        "championDelta": True,
    }
    world.become_available()
    decision = world.reconcile()
    assert decision.status.phase == "Ready"
    assert decision.status.production_version == 1
    assert decision.status.headline_metric == "accuracy=0.93"
    assert decision.status.endpoint == "http://sentiment.ml:3000"
    assert world.condition("Ready") == "True"
    assert world.condition("Reconciling") == "False"
    assert {"Trained", "Promoted", "RolledOut"} <= set(world.reasons())


@pytest.mark.parametrize(
    ("accuracy", "verdict"),
    [(0.85, "Promoted"), (0.8499, "Rejected"), (0.8501, "Promoted")],
)
def test_gate_threshold_is_inclusive_and_a_hair_below_fails(accuracy: float, verdict: str) -> None:
    world = InMemoryWorld(customization())
    world.reconcile()
    world.finish(1, accuracy=accuracy, macroF1=0.9)
    world.reconcile()
    assert world.phase(1) == verdict


def test_rejected_first_version_stalls_without_serving() -> None:
    world = InMemoryWorld(customization())
    world.reconcile()
    world.finish(1, accuracy=0.5, macroF1=0.4)
    decision = world.reconcile()
    assert world.phase(1) == "Rejected"
    assert actions_of(decision, Deploy) == []
    assert decision.status.phase == "Failed"
    assert world.condition("Stalled") == "True"
    message = world.versions[1].status.message  # type: ignore[union-attr]
    assert "accuracy 0.5 misses >= 0.85" in message
    assert "Rejected" in world.reasons()


def test_missing_metric_fails_its_gate() -> None:
    world = InMemoryWorld(customization())
    world.reconcile()
    world.finish(1, accuracy=0.99)
    world.reconcile()
    gates = {g.name: g for g in world.versions[1].status.gates}  # type: ignore[union-attr]
    assert gates["macroF1>="].passed is False
    assert "no finite macroF1" in gates["macroF1>="].message


def _retrain_with_new_spec(world: InMemoryWorld) -> None:
    world.document["spec"]["training"]["epochs"] = 6
    world.document["metadata"]["generation"] = 2
    world.reconcile()


@pytest.mark.parametrize(
    ("candidate", "champion", "verdict"),
    [
        ({"macroF1": 0.905}, {"macroF1": 0.91}, "Promoted"),  # within the allowed -0.01
        ({"macroF1": 0.899}, {"macroF1": 0.91}, "Rejected"),  # regresses past it
        ({"macroF1": 0.95}, None, "Promoted"),  # no champion metrics: production's recorded ones
    ],
)
def test_champion_delta_against_production(
    candidate: dict[str, float], champion: dict[str, float] | None, verdict: str
) -> None:
    world = promoted_world()
    _retrain_with_new_spec(world)
    assert world.phase(2) == "Training"
    result = TrainerSummary(
        outcome="Succeeded",
        metrics={"accuracy": 0.9, **candidate},
        championMetrics=champion,
        artifactUri="pvc://x/versions/v2",
    )
    world.finish(2, TrainerRun(2, 1, "Succeeded", summary=result))
    decision = world.reconcile()
    assert world.phase(2) == verdict
    delta = next(g for g in world.versions[2].status.gates if g.name == "championDelta")  # type: ignore[union-attr]
    assert delta.passed == (verdict == "Promoted")
    if verdict == "Rejected":
        # Production is untouched: v1 still serves, nothing redeploys elsewhere.
        assert decision.status.production_version == 1
        assert {d.version for d in actions_of(decision, Deploy)} == {1}
        # The spec change asked for a version that was rejected: stalled until a person acts.
        assert decision.status.phase == "Failed"
        assert world.condition("Stalled") == "True"


def test_approval_holds_a_passing_candidate_until_approved() -> None:
    world = InMemoryWorld(customization(evaluation__requireApproval=True))
    world.reconcile()
    world.finish(1, **GOOD)
    decision = world.reconcile()
    assert world.phase(1) == "AwaitingApproval"
    assert actions_of(decision, Deploy) == []
    assert decision.status.phase == "AwaitingApproval"
    assert decision.status.candidate_version == 1
    world.approved.add(1)
    decision = world.reconcile()
    assert world.phase(1) == "Promoted"
    assert actions_of(decision, Deploy)[0].version == 1


def test_pinned_version_is_served_whatever_the_gates_say() -> None:
    world = promoted_world()
    _retrain_with_new_spec(world)
    world.finish(2, accuracy=0.1, macroF1=0.1)
    world.reconcile()
    assert world.phase(2) == "Rejected"
    world.document["spec"]["serving"]["pinnedVersion"] = 2
    decision = world.reconcile()
    assert actions_of(decision, Deploy)[0].version == 2
    world.become_available()
    decision = world.reconcile()
    assert decision.status.production_version == 2
    assert world.phase(1) == "Retired"
    assert world.versions[2].status.reason == "Pinned"  # type: ignore[union-attr]


def test_pinning_a_missing_version_keeps_production_and_says_why() -> None:
    world = promoted_world()
    world.document["spec"]["serving"]["pinnedVersion"] = 7
    decision = world.reconcile()
    assert decision.status.production_version == 1
    assert [d.version for d in actions_of(decision, Deploy)] == [1]
    ready = next(c for c in decision.status.conditions if c.type == "Ready")
    assert "pinned version 7 does not exist" in ready.message


def test_rollout_that_never_becomes_available_rolls_back() -> None:
    world = promoted_world()
    _retrain_with_new_spec(world)
    world.finish(2, accuracy=0.95, macroF1=0.95)
    decision = world.reconcile()
    assert actions_of(decision, Deploy)[0].version == 2
    world.tick(300)
    decision = world.reconcile()
    assert actions_of(decision, Deploy)[0].version == 2  # still within the deadline
    assert decision.status.phase == "RollingOut"
    world.tick(301)
    decision = world.reconcile()
    assert world.phase(2) == "Failed"
    assert world.versions[2].status.reason == "RolloutFailed"  # type: ignore[union-attr]
    assert [d.version for d in actions_of(decision, Deploy)] == [1]
    assert "RolledBack" in world.reasons()
    world.become_available()
    decision = world.reconcile()
    assert decision.status.production_version == 1
    # v1 serves again, but what the spec change asked for failed: Stalled/RolloutFailed.
    assert decision.status.phase == "Failed"
    assert world.condition("Serving") == "True"
    assert world.phase(1) == "Promoted"


def test_failed_trainer_is_retried_within_the_limit_then_fails() -> None:
    world = InMemoryWorld(customization(training__retryLimit=1))
    world.reconcile()
    crash = TrainerSummary(outcome="Failed", reason="InternalError", message="boom", exitCode=1)
    world.finish(1, TrainerRun(1, 1, "Failed", summary=crash))
    decision = world.reconcile()
    assert actions_of(decision, StartTrainer) == [StartTrainer(1, 2)]
    world.finish(1, TrainerRun(1, 2, "Failed", summary=crash))
    decision = world.reconcile()
    assert actions_of(decision, StartTrainer) == []
    assert world.phase(1) == "Failed"
    assert world.versions[1].status.reason == "InternalError"  # type: ignore[union-attr]
    assert decision.status.phase == "Failed"
    assert world.condition("Stalled") == "True"
    assert world.reasons().count("TrainingFailed") == 1


@pytest.mark.parametrize(
    ("reason", "exit_code"), [("InvalidData", 3), ("ModelNotFound", 7)], ids=["data", "model"]
)
def test_a_failure_a_retry_cannot_fix_is_not_retried(reason: str, exit_code: int) -> None:
    world = InMemoryWorld(customization())
    world.reconcile()
    bad = TrainerSummary(outcome="Failed", reason=reason, message="fix me", exitCode=exit_code)
    world.finish(1, TrainerRun(1, 1, "Failed", summary=bad))
    decision = world.reconcile()
    assert actions_of(decision, StartTrainer) == []
    assert world.versions[1].status.reason == reason  # type: ignore[union-attr]
    assert world.versions[1].status.message == "fix me"  # type: ignore[union-attr]


def test_disrupted_trainer_restarts_without_using_a_retry() -> None:
    world = InMemoryWorld(customization(training__retryLimit=0))
    world.reconcile()
    world.finish(1, TrainerRun(1, 1, "Failed", disrupted=True))
    decision = world.reconcile()
    assert actions_of(decision, StartTrainer) == [StartTrainer(1, 2)]


def test_failure_after_production_keeps_serving_and_stalls() -> None:
    world = promoted_world()
    _retrain_with_new_spec(world)
    bad = TrainerSummary(outcome="Failed", reason="OutOfMemory", message="oom", exitCode=5)
    world.finish(2, TrainerRun(2, 1, "Failed", summary=bad))
    decision = world.reconcile()
    assert world.phase(2) == "Failed"
    assert decision.status.phase == "Failed"
    assert world.condition("Stalled") == "True"
    assert world.condition("Serving") == "True"
    assert decision.status.production_version == 1


def test_spec_change_mid_training_supersedes_the_running_version() -> None:
    world = InMemoryWorld(customization())
    world.reconcile()
    decision = world.reconcile()
    world.document["spec"]["method"]["lora"]["r"] = 32
    decision = world.reconcile()
    assert actions_of(decision, StopTrainer) == [StopTrainer(1)]
    assert world.phase(1) == "Failed"
    assert world.versions[1].status.reason == "Superseded"  # type: ignore[union-attr]
    assert [c.version.spec.trigger for c in actions_of(decision, CreateVersion)] == ["SpecChange"]
    assert actions_of(decision, StartTrainer) == [StartTrainer(2, 1)]


def test_a_trainer_whose_version_was_deleted_by_hand_is_stopped() -> None:
    world = InMemoryWorld(customization())
    world.reconcile()
    del world.versions[1]  # `kubectl delete modelversion sentiment-v1` while it trains
    decision = world.reconcile()
    assert actions_of(decision, StopTrainer) == [StopTrainer(1)]
    # The spec still asks for a model, so a new version trains in its place.
    assert [c.version.spec.version for c in actions_of(decision, CreateVersion)] == [2]
    assert actions_of(decision, StartTrainer) == [StartTrainer(2, 1)]
    # A finished run of a deleted version (its Job not yet expired) is left alone.
    world.finish(2, **GOOD)
    del world.versions[2]
    assert actions_of(world.reconcile(), StopTrainer) == []


def test_a_trainer_of_an_unrecorded_version_keeps_its_number_from_being_reused() -> None:
    world = InMemoryWorld(customization())
    # A pass wrote v1's trainer but not v1 itself (its create failed) and no status either.
    world.runs[(1, 1)] = TrainerRun(1, 1, "Running")

    decision = world.reconcile()

    assert actions_of(decision, StopTrainer) == [StopTrainer(1)]
    assert [c.version.spec.version for c in actions_of(decision, CreateVersion)] == [2]
    assert actions_of(decision, StartTrainer) == [StartTrainer(2, 1)]
    assert decision.status.latest_version == 2


def test_a_stray_trainer_above_the_latest_version_changes_nothing_by_itself() -> None:
    world = promoted_world()
    # A Job numbered past every recorded version (say, an earlier namesake's, not yet collected).
    world.runs[(2, 1)] = TrainerRun(2, 1, "Failed")

    decision = world.reconcile()

    assert actions_of(decision, CreateVersion) == []
    assert decision.status.production_version == 1
    assert decision.status.latest_version == 1


def test_serving_only_change_redeploys_without_retraining() -> None:
    world = promoted_world()
    world.document["spec"]["serving"]["replicas"] = 3
    world.document["spec"]["training"]["resources"] = {"gpus": 1}
    decision = world.reconcile()
    assert actions_of(decision, CreateVersion) == []
    [deploy] = actions_of(decision, Deploy)
    assert (deploy.version, deploy.artifact_uri) == (1, ARTIFACTS_V1)
    # The core decides the new shape; a runtime only applies it.
    assert deploy.serving.replicas == 3


def test_disabling_serving_undeploys() -> None:
    world = promoted_world()
    world.document["spec"]["serving"]["enabled"] = False
    decision = world.reconcile()
    assert actions_of(decision, Undeploy) == [Undeploy()]


def test_with_serving_disabled_a_promoted_version_is_production_and_ready() -> None:
    world = InMemoryWorld(customization(serving__enabled=False))
    world.reconcile()
    world.finish(1, **GOOD)
    decision = world.reconcile()
    assert world.phase(1) == "Promoted"
    assert actions_of(decision, Deploy) == []
    assert decision.status.production_version == 1
    assert decision.status.phase == "Ready"
    assert decision.status.rollout is None
    assert decision.status.endpoint is None
    assert world.condition("Ready") == "True"
    assert "RolledOut" not in world.reasons()  # nothing was rolled out
    # A better version later takes over production and retires the first.
    _retrain_with_new_spec(world)
    world.finish(2, accuracy=0.95, macroF1=0.93, evalLoss=0.1)
    decision = world.reconcile()
    assert (world.phase(1), world.phase(2)) == ("Retired", "Promoted")
    assert decision.status.production_version == 2
    assert decision.status.phase == "Ready"


def _drift(world: InMemoryWorld, share: float) -> None:
    world.drift = DriftReport(
        version=world.mc.status.production_version or 0,  # type: ignore[union-attr]
        checked_at=world.now,
        drift_share=share,
        dataset_drift=share >= 0.5,
        window_rows=500,
        drifted_features=("length", "oov_rate"),
    )


def test_drift_alert_policy_reports_without_retraining() -> None:
    world = promoted_world()
    _drift(world, 0.75)
    decision = world.reconcile()
    assert world.condition("Drifted") == "True"
    assert decision.status.drift is not None
    assert decision.status.drift.share == "0.75"
    assert actions_of(decision, CreateVersion) == []
    assert "DriftDetected" in world.reasons()


def test_drift_below_threshold_is_not_drift() -> None:
    world = promoted_world()
    _drift(world, 0.25)
    world.reconcile()
    assert world.condition("Drifted") == "False"


def test_drift_retrain_respects_cooldown_and_daily_cap() -> None:
    world = promoted_world(
        monitoring__onDrift={"action": "retrain", "cooldownSeconds": 3600, "maxRetrainsPerDay": 2}
    )
    world.tick(60)
    _drift(world, 0.8)
    decision = world.reconcile()
    created = actions_of(decision, CreateVersion)
    assert [c.version.spec.trigger for c in created] == ["Drift"]
    # While v2 trains, and after it is rejected but within the cooldown: no new retrain.
    world.finish(2, accuracy=0.2, macroF1=0.2)
    world.tick(600)
    _drift(world, 0.8)
    assert actions_of(world.reconcile(), CreateVersion) == []
    assert world.phase(2) == "Rejected"
    world.tick(3600)
    _drift(world, 0.8)
    assert len(actions_of(world.reconcile(), CreateVersion)) == 1  # cooldown elapsed
    world.finish(3, accuracy=0.2, macroF1=0.2)
    world.reconcile()
    world.tick(3700)
    _drift(world, 0.8)
    assert actions_of(world.reconcile(), CreateVersion) == []  # 2 today: the cap
    world.tick(24 * 3600)
    _drift(world, 0.8)
    assert len(actions_of(world.reconcile(), CreateVersion)) == 1  # a new day


def test_drift_retrain_warm_starts_from_production_when_asked() -> None:
    world = promoted_world(
        training__warmStart=True, monitoring__onDrift={"action": "retrain", "cooldownSeconds": 0}
    )
    _drift(world, 0.9)
    created = actions_of(world.reconcile(), CreateVersion)
    assert created[0].version.spec.parent_version == 1


def test_old_versions_beyond_the_history_limit_are_deleted_but_not_production() -> None:
    world = promoted_world(versionHistoryLimit=2)
    for epochs in (5, 6, 7):
        world.document["spec"]["training"]["epochs"] = epochs
        world.reconcile()
        number = max(world.versions)
        world.finish(number, accuracy=0.1, macroF1=0.1)
        world.reconcile()
    assert sorted(world.versions) == [1, 4]
    assert world.mc.status.production_version == 1  # type: ignore[union-attr]
    assert world.mc.status.latest_version == 4  # type: ignore[union-attr]


def test_deleted_versions_never_have_their_numbers_reused() -> None:
    world = promoted_world(versionHistoryLimit=1)
    world.document["spec"]["training"]["epochs"] = 9
    world.reconcile()
    world.finish(2, accuracy=0.1, macroF1=0.1)
    decision = world.reconcile()
    assert actions_of(decision, DeleteVersion) == []  # v1 serves, v2 is the newest record
    world.document["spec"]["training"]["epochs"] = 10
    decision = world.reconcile()
    assert [c.version.spec.version for c in actions_of(decision, CreateVersion)] == [3]


def test_condition_transition_time_moves_only_when_status_flips() -> None:
    world = InMemoryWorld(customization())
    world.reconcile()
    first = world.mc.status.conditions  # type: ignore[union-attr]
    world.tick(120)
    world.reconcile()
    second = world.mc.status.conditions  # type: ignore[union-attr]
    assert [c.last_transition_time for c in first] == [c.last_transition_time for c in second]
    world.finish(1, **GOOD)
    world.reconcile()
    world.become_available()
    world.tick(60)
    world.reconcile()
    ready = next(c for c in world.mc.status.conditions if c.type == "Ready")  # type: ignore[union-attr]
    assert ready.status == "True"
    assert ready.last_transition_time == world.now


def test_decide_is_deterministic_for_the_same_inputs() -> None:
    world = promoted_world()
    mc, observed = world.mc, world.observed()
    from bespoke_operator.reconcile import decide

    assert decide(mc, observed) == decide(mc, observed)


@pytest.mark.parametrize("reason", ["InvalidSpec", "ApiRequestFailed"])
def test_a_stalled_status_has_one_shape_whatever_the_reason(reason: str) -> None:
    previous = promoted_world().reconcile().status
    status = stalled_status(previous, reason=reason, message="fix it", generation=3, now=START)
    conditions = {c.type: (c.status, c.reason) for c in status.conditions}
    assert conditions["Stalled"] == ("True", reason)
    assert conditions["Ready"] == ("False", reason)
    assert conditions["Reconciling"] == ("False", reason)
    assert (status.phase, status.observed_generation) == ("Failed", 3)
    # What the operator knew stays: the production version is still recorded.
    assert status.production_version == previous.production_version


def test_training_hash_ignores_scheduling_but_not_hyperparameters() -> None:
    base = ModelCustomization.model_validate(customization()).spec

    def changed(**spec: object) -> ModelCustomizationSpec:
        return ModelCustomization.model_validate(customization(**spec)).spec

    assert training_hash(changed(training__resources={"gpus": 2})) == training_hash(base)
    assert training_hash(changed(training__queueName="q")) == training_hash(base)
    assert training_hash(changed(serving__replicas=4)) == training_hash(base)
    assert training_hash(changed(training__learningRate="1e-3")) != training_hash(base)
    assert training_hash(changed(dataset__columns={"text": "body"})) != training_hash(base)
