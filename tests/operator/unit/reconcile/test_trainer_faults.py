"""Trainer faults fail fast with their true reason: pods that cannot start, and OOM kills.

A pod that cannot pull its image, lacks a Secret, or fits no node fails its attempt at the
start-up deadline with the kubelet's or scheduler's reason (not after the 24 h training
deadline, and not retried unchanged); an OOM kill is `OutOfMemory` with what to change. Changing
where or how the trainer runs (image, resources, gradient checkpointing) trains again.
"""

from __future__ import annotations

import pytest

from bespoke_operator.reconcile import (
    CreateVersion,
    Event,
    StartTrainer,
    StartupProblem,
    StopTrainer,
    TrainerRun,
    TrainerSummary,
)
from bespoke_operator.reconcile.observed import STARTUP_FAILURES

from .world import InMemoryWorld, actions_of, customization

STARTUP = 300  # the default training.startupDeadlineSeconds


def stuck_world(reason: str | None, **changes: object) -> InMemoryWorld:
    """v1's trainer pod exists but has not started; `reason` says why (None: a slow pull)."""
    world = InMemoryWorld(customization(**changes))
    world.reconcile()
    problem = StartupProblem(reason, f"container trainer: {reason} detail") if reason else None
    world.runs[(1, 1)] = TrainerRun(
        1, 1, "Running", created_at=world.now, pending=True, startup_problem=problem
    )
    return world


def test_start_deadline_is_published_for_the_schedule_until_the_pod_starts() -> None:
    world = stuck_world("ImagePullBackOff")
    decision = world.reconcile()
    assert world.phase(1) == "Training"
    assert decision.status.trainer_start_deadline is not None
    assert (decision.status.trainer_start_deadline - world.now).total_seconds() == STARTUP
    world.runs[(1, 1)] = TrainerRun(1, 1, "Running", created_at=world.now)  # it started
    assert world.reconcile().status.trainer_start_deadline is None


@pytest.mark.parametrize(
    "reason",
    [
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "Unschedulable",
    ],
)
def test_a_pod_that_cannot_start_fails_at_the_deadline_with_its_reason(reason: str) -> None:
    world = stuck_world(reason)
    world.tick(STARTUP - 1)
    world.reconcile()
    assert world.phase(1) == "Training"
    world.tick(1)
    decision = world.reconcile()
    assert world.phase(1) == "Failed"
    status = world.versions[1].status
    assert status is not None
    assert status.reason == reason
    assert f"{reason} detail" in (status.message or "")
    assert actions_of(decision, StopTrainer) == [StopTrainer(1)]
    assert actions_of(decision, StartTrainer) == []  # not retried unchanged
    failed = [e for e in actions_of(decision, Event) if e.reason == "TrainingFailed"]
    assert len(failed) == 1
    assert reason in failed[0].message
    assert decision.status.phase == "Failed"
    stalled = next(c for c in decision.status.conditions if c.type == "Stalled")
    assert (stalled.status, stalled.reason) == ("True", reason)
    assert world.reconcile().actions == ()  # settled: nothing more to do


def test_a_slow_pull_is_waited_for() -> None:
    world = stuck_world(None)
    world.tick(STARTUP * 4)
    world.reconcile()
    assert world.phase(1) == "Training"


def test_the_start_up_deadline_is_a_spec_setting() -> None:
    world = stuck_world("ImagePullBackOff", training__startupDeadlineSeconds=60)
    world.tick(60)
    world.reconcile()
    assert world.phase(1) == "Failed"


def test_fixing_the_image_trains_again_as_a_new_version() -> None:
    world = stuck_world("ImagePullBackOff", training__image="registry.example/trainer:typo")
    world.tick(STARTUP)
    world.reconcile()
    assert world.phase(1) == "Failed"
    world.document["spec"]["training"]["image"] = "registry.example/trainer:1"
    decision = world.reconcile()
    created = actions_of(decision, CreateVersion)
    assert [c.version.spec.version for c in created] == [2]
    assert created[0].version.spec.snapshot.training.image == "registry.example/trainer:1"
    assert actions_of(decision, StartTrainer) == [StartTrainer(2, 1)]


@pytest.mark.parametrize("reason", sorted(STARTUP_FAILURES | {"Unschedulable"}))
def test_every_reason_a_pod_cannot_start_trains_again_once_training_changes(reason: str) -> None:
    """The reasons the Kubernetes reader reports and those a spec change retrains are one set."""
    world = stuck_world(reason, training__image="registry.example/trainer:typo")
    world.tick(STARTUP)
    world.reconcile()
    assert world.phase(1) == "Failed"
    world.document["spec"]["training"]["image"] = "registry.example/trainer:1"
    decision = world.reconcile()
    assert [c.version.spec.version for c in actions_of(decision, CreateVersion)] == [2]


def _oom(world: InMemoryWorld) -> None:
    killed = TrainerSummary(
        outcome="Failed",
        reason="OutOfMemory",
        message="the trainer was killed at its memory limit (OOMKilled)",
        exitCode=137,
    )
    world.finish(1, TrainerRun(1, 1, "Failed", summary=killed))


def test_an_oom_kill_is_out_of_memory_with_a_hint_and_not_retried_unchanged() -> None:
    world = InMemoryWorld(customization(training__retryLimit=2))
    world.reconcile()
    _oom(world)
    decision = world.reconcile()
    assert actions_of(decision, StartTrainer) == []
    status = world.versions[1].status
    assert status is not None
    assert (status.phase, status.reason) == ("Failed", "OutOfMemory")
    message = status.message or ""
    for hint in ("training.batchSize", "training.gradientCheckpointing", "training.resources"):
        assert hint in message
    # Unchanged, nothing is retried; more memory trains again.
    assert actions_of(world.reconcile(), CreateVersion) == []
    world.document["spec"]["training"]["resources"] = {"memory": "32Gi"}
    assert [c.version.spec.version for c in actions_of(world.reconcile(), CreateVersion)] == [2]


def test_a_generic_crash_is_still_retried() -> None:
    world = InMemoryWorld(customization(training__retryLimit=1))
    world.reconcile()
    crash = TrainerSummary(outcome="Failed", reason="TrainerCrashed", message="x", exitCode=1)
    world.finish(1, TrainerRun(1, 1, "Failed", summary=crash))
    assert actions_of(world.reconcile(), StartTrainer) == [StartTrainer(1, 2)]
