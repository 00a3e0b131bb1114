"""Reads a customization's children from listed API objects into the core's `Observed` values.

Pure functions over JSON, so the parsing of Job, Pod and Deployment status is tested without
a server; `KubernetesRuntime` does the listing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from bespoke_operator.api import ModelVersion
from bespoke_operator.constants import ATTEMPT_LABEL, VERSION_LABEL
from bespoke_operator.reconcile import ServingState, StartupProblem, TrainerRun, TrainerSummary
from bespoke_operator.reconcile.observed import STARTUP_FAILURES
from bespoke_operator.runtimes.kubernetes.objects import SERVING_HASH_ANNOTATION, TRAINER_CONTAINER

__all__ = [
    "parse_versions",
    "serving_state",
    "trainer_runs",
    "without_server_fields",
]

_log = logging.getLogger(__name__)


def parse_versions(items: Iterable[Mapping[str, Any]]) -> list[ModelVersion]:
    """ModelVersion objects; one that does not parse is skipped with a log line, not fatal."""
    versions = []
    for item in items:
        try:
            versions.append(ModelVersion.model_validate(without_server_fields(item)))
        except ValidationError as exc:
            name = item.get("metadata", {}).get("name")
            _log.warning("Skipping ModelVersion %s that does not parse: %s", name, exc)
    return versions


def without_server_fields(item: Mapping[str, Any]) -> dict[str, Any]:
    """The fields the API models describe (drops server-only keys the strict models reject)."""
    return {
        k: v for k, v in item.items() if k in ("apiVersion", "kind", "metadata", "spec", "status")
    }


def trainer_runs(
    jobs: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]]
) -> list[TrainerRun]:
    """One run per trainer Job, with the summary its pod left in its termination message."""
    jobs = list(jobs)
    uids = {job["metadata"].get("uid") for job in jobs}
    pods_by_job: dict[str, list[Mapping[str, Any]]] = {}
    for pod in pods:
        job = pod.get("metadata", {}).get("labels", {}).get("batch.kubernetes.io/job-name")
        owners = {
            ref.get("uid")
            for ref in pod.get("metadata", {}).get("ownerReferences", [])
            if ref.get("kind") == "Job"
        }
        # A pod of an earlier Job of the same name (a namesake's, awaiting collection) is not
        # this Job's.
        if job and (not owners or owners & uids):
            pods_by_job.setdefault(job, []).append(pod)
    runs = []
    for job in jobs:
        labels = job["metadata"].get("labels", {})
        try:
            version = int(labels[VERSION_LABEL])
            attempt = int(labels[ATTEMPT_LABEL])
        except (KeyError, ValueError):
            continue
        runs.append(_run(job, version, attempt, pods_by_job.get(job["metadata"]["name"], [])))
    return runs


def _condition(obj: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for condition in obj.get("status", {}).get("conditions", []) or []:
        if condition.get("type") == type_ and condition.get("status") == "True":
            return condition  # type: ignore[no-any-return]
    return None


def _run(
    job: Mapping[str, Any], version: int, attempt: int, pods: list[Mapping[str, Any]]
) -> TrainerRun:
    status = job.get("status", {})
    failed = _condition(job, "Failed")
    if _condition(job, "Complete") or status.get("succeeded", 0) >= 1:
        state = "Succeeded"
    elif failed:
        state = "Failed"
    else:
        return _running(job, version, attempt, pods)
    pod = max(pods, key=lambda p: p["metadata"].get("creationTimestamp", ""), default=None)
    summary = _summary(pod) if pod is not None else None
    if summary is None and failed is not None:
        reason = failed.get("reason") or "TrainerFailed"
        summary = TrainerSummary(outcome="Failed", reason=reason, message=failed.get("message", ""))
    disrupted = pod is not None and _condition(pod, "DisruptionTarget") is not None
    return TrainerRun(version, attempt, state, summary=summary, disrupted=disrupted)  # type: ignore[arg-type]


def _running(
    job: Mapping[str, Any], version: int, attempt: int, pods: list[Mapping[str, Any]]
) -> TrainerRun:
    """A running attempt: whether its pod has started, and why not when it cannot."""
    created = _timestamp(job["metadata"].get("creationTimestamp"))
    pod = max(pods, key=lambda p: p["metadata"].get("creationTimestamp", ""), default=None)
    if pod is None:  # no pod yet (a Job queued by Kueue, or just created)
        return TrainerRun(version, attempt, "Running", created_at=created, pending=True)
    statuses = pod.get("status", {}).get("containerStatuses", []) or []
    started = any(
        "running" in (c.get("state") or {}) or "terminated" in (c.get("state") or {})
        for c in statuses
    )
    if started:
        return TrainerRun(version, attempt, "Running", created_at=created)
    # The start-up deadline runs from the pod's creation: a Job can wait long before it has one
    # (Kueue, a full ResourceQuota), and a pod's first, transient pull error must get its time.
    created = _timestamp(pod["metadata"].get("creationTimestamp")) or created
    problem = None
    for container in statuses:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in STARTUP_FAILURES:
            message = waiting.get("message") or ""
            problem = StartupProblem(
                waiting["reason"], f"container {container.get('name')}: {message}"[:1024]
            )
            break
    for condition in pod.get("status", {}).get("conditions", []) or []:
        if (
            problem is None
            and condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            problem = StartupProblem("Unschedulable", (condition.get("message") or "")[:1024])
    return TrainerRun(
        version, attempt, "Running", created_at=created, pending=True, startup_problem=problem
    )


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _summary(pod: Mapping[str, Any]) -> TrainerSummary | None:
    for container in pod.get("status", {}).get("containerStatuses", []) or []:
        if container.get("name") != TRAINER_CONTAINER:
            continue
        terminated = container.get("state", {}).get("terminated")
        if not terminated:
            return None
        exit_code = terminated.get("exitCode")
        if terminated.get("reason") == "OOMKilled":
            # Killed by the kernel at the memory limit: no summary was written, and the log tail
            # would hide the reason. decide adds the hint on what to change.
            return TrainerSummary(
                outcome="Failed",
                reason="OutOfMemory",
                message="the trainer was killed at its memory limit (OOMKilled)",
                exit_code=exit_code,
            )
        try:
            data = json.loads(terminated.get("message") or "")
            summary = TrainerSummary.model_validate(data)
        except (ValueError, ValidationError):
            # No summary (a crash before it was written): the log tail is the best reason.
            tail = (terminated.get("message") or terminated.get("reason") or "")[-512:]
            return TrainerSummary(
                outcome="Succeeded" if exit_code == 0 else "Failed",
                reason=None if exit_code == 0 else "TrainerCrashed",
                message=tail,
                exit_code=exit_code,
            )
        if summary.exit_code is None:
            summary = summary.model_copy(update={"exit_code": exit_code})
        return summary
    return None


def serving_state(deployment: Mapping[str, Any] | None, endpoint: str) -> ServingState | None:
    """The version the Deployment serves and whether its rollout is complete and available."""
    if deployment is None:
        return None
    labels = deployment["spec"]["template"]["metadata"].get("labels", {})
    try:
        version = int(labels[VERSION_LABEL])
    except (KeyError, ValueError):
        return None
    spec, status = deployment["spec"], deployment.get("status", {})
    wanted = spec.get("replicas", 1)
    current = status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 0)
    available = (
        current
        and status.get("updatedReplicas", 0) >= wanted
        and status.get("availableReplicas", 0) >= wanted
        and status.get("replicas", 0) == status.get("updatedReplicas", 0)
    )
    return ServingState(
        version=version,
        available=bool(available),
        ready_replicas=status.get("readyReplicas", 0),
        endpoint=endpoint,
        serving_hash=(deployment["metadata"].get("annotations") or {}).get(SERVING_HASH_ANNOTATION),
    )
