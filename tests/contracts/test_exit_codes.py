"""Trainer → operator: exit codes and reasons mean the same on both sides.

The trainer's error tree says which failures a retry cannot fix (`retryable = False`); the
operator cannot import the trainer, so its `PERMANENT_EXIT_CODES` (which stop retries and make
the trainer Job fail fast) are held to that tree here.
"""

from __future__ import annotations

from bespoke_operator.reconcile import PERMANENT_EXIT_CODES, Observed, StartTrainer, decide
from bespoke_operator.runtimes.kubernetes import objects
from bespoke_trainer import errors
from tests.operator.unit.reconcile.world import START, InMemoryWorld, customization


def _trainer_errors() -> list[type[errors.TrainerError]]:
    return [errors.TrainerError, *_subclasses(errors.TrainerError)]


def _subclasses(cls: type[errors.TrainerError]) -> list[type[errors.TrainerError]]:
    return [s for c in cls.__subclasses__() for s in (c, *_subclasses(c))]


def test_every_exit_code_and_reason_is_defined_once() -> None:
    found = _trainer_errors()
    assert len({e.exit_code for e in found}) == len(found)
    assert len({e.reason for e in found}) == len(found)
    assert 0 not in {e.exit_code for e in found}


def test_the_operator_stops_retrying_exactly_on_the_trainer_s_permanent_failures() -> None:
    permanent = {e.exit_code for e in _trainer_errors() if not e.retryable}
    assert permanent == PERMANENT_EXIT_CODES


def test_the_trainer_job_fails_fast_on_the_same_codes() -> None:
    world = InMemoryWorld(customization())
    decision = decide(world.mc, Observed(now=START))
    [start] = [a for a in decision.actions if isinstance(a, StartTrainer)]
    assert start.spec is not None
    assert start.shape is not None
    owner = objects.OwnerRef("bespoke.dev/v1alpha1", "ModelCustomization", "sentiment", "uid")
    images = objects.Images(trainer="t:1", serving="s:1")
    job = objects.trainer_job(start.spec, start.shape, 1, "ml", owner, images)
    [fail_fast] = [r for r in job["spec"]["podFailurePolicy"]["rules"] if r["action"] == "FailJob"]
    assert set(fail_fast["onExitCodes"]["values"]) == PERMANENT_EXIT_CODES
