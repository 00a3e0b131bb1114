"""The Kubernetes runtime: observes a customization's children, asks `decide`, applies actions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from pydantic import ValidationError

from bespoke_operator.api import (
    API_VERSION,
    ModelCustomization,
    ModelCustomizationStatus,
    is_relative_location,
)
from bespoke_operator.constants import (
    COMPONENT_LABEL,
    CUSTOMIZATION_LABEL,
    CUSTOMIZATIONS,
    TRAINER,
    VERSION_LABEL,
    VERSIONS,
)
from bespoke_operator.errors import ApiError
from bespoke_operator.reconcile import (
    Action,
    CreateVersion,
    Decision,
    DeleteVersion,
    Deploy,
    DriftReport,
    Event,
    Observed,
    SetVersionStatus,
    StartTrainer,
    StopTrainer,
    Undeploy,
    approved_versions,
    decide,
    drift_report,
    stalled_status,
    version_name,
)
from bespoke_operator.reconcile.schedule import drift_reading_due
from bespoke_operator.reconcile.trainer_config import trainer_shape
from bespoke_operator.runtimes.kubernetes import objects, read
from bespoke_operator.runtimes.kubernetes.client import KubeApi, resource_path

__all__ = ["KubernetesRuntime", "Outcome", "status_patch", "unreconciled"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What one reconcile did: the status to write, the decision and the spec behind it."""

    status: ModelCustomizationStatus
    decision: Decision | None
    customization: ModelCustomization | None = None


def status_patch(status: ModelCustomizationStatus) -> dict[str, Any]:
    """The status as a merge patch: fields that became empty are nulled, lists written whole."""
    return status.model_dump(mode="json", by_alias=True)


def unreconciled(body: Mapping[str, Any]) -> bool:
    """Whether no pass has written this customization's status yet.

    The server reads a status it never got as the schema's defaults (`conditions: []`, ...), so
    an empty status is not the sign: a written one always has `observedGeneration`.
    """
    return not (body.get("status") or {}).get("observedGeneration")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class KubernetesRuntime:
    """Turns the core's actions into API objects; every action is idempotent."""

    def __init__(
        self,
        api: KubeApi,
        images: objects.Images,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.api = api
        self.images = images
        self.clock = clock

    async def reconcile_and_record(
        self,
        namespace: str,
        name: str,
        *,
        known: Mapping[str, Any] | None = None,
        read_drift: bool = False,
    ) -> Outcome | None:
        """Reads a customization, reconciles it, writes its status if changed; None when gone.

        `known`: a body just delivered by the ADDED event of a new customization (no status yet),
        as fresh as a re-read would be. Otherwise status is computed from the freshest object,
        never from a stale event body. `read_drift`: read `/drift` when a reading is due. A pass
        the API refuses for good (e.g. a missing RBAC permission) is written into status as
        Stalled/ApiRequestFailed, not left silent, and raised.
        """
        path = resource_path(API_VERSION, CUSTOMIZATIONS, namespace, name)
        body = known
        try:
            if body is None:
                body = await self.api.get(path)
            if body is None or body["metadata"].get("deletionTimestamp"):
                return None
            drift = await self._drift_if_due(body) if read_drift else None
            outcome = await self.reconcile(body, drift, new=known is not None)
            if _previous_status(body) != outcome.status:  # an unchanged one is not rewritten
                await self.api.merge_patch(
                    f"{path}/status", {"status": status_patch(outcome.status)}
                )
        except ApiError as exc:
            if not exc.retryable and body is not None:
                await self._record_failure(path, body, exc)
            raise
        return outcome

    async def _record_failure(self, path: str, body: Mapping[str, Any], exc: ApiError) -> None:
        _log.error("Reconcile of %s failed: %s", path, exc)
        status = self._stalled(body, "ApiRequestFailed", f"the operator cannot continue: {exc}")
        try:
            await self.api.merge_patch(f"{path}/status", {"status": status_patch(status)})
        except ApiError as second:
            _log.error("Cannot write the failure into %s status either: %s", path, second)

    async def _drift_if_due(self, body: Mapping[str, Any]) -> DriftReport | None:
        try:
            mc = ModelCustomization.model_validate(read.without_server_fields(body))
        except ValidationError:
            return None  # the pass reports the invalid spec
        due = drift_reading_due(mc, mc.status, now=self.clock())
        return await self.read_drift(mc) if due is not None and due <= self.clock() else None

    async def reconcile(
        self, body: Mapping[str, Any], drift: DriftReport | None = None, *, new: bool = False
    ) -> Outcome:
        """One level-triggered pass over a customization (its body as the API returned it).

        `new`: the body is a customization just created while the operator watched (its ADDED
        event); with no status yet, it has no children to list.
        """
        metadata = body.get("metadata", {})
        try:
            mc = ModelCustomization.model_validate(read.without_server_fields(body))
        except ValidationError as exc:
            message = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            return self._invalid(body, message)
        if relative := _relative_locations(mc):
            return self._invalid(body, relative)
        owner = objects.OwnerRef(
            API_VERSION, "ModelCustomization", mc.metadata.name, metadata["uid"]
        )
        if new and unreconciled(body):
            # Nothing has reconciled this customization yet, so it has no children to list: the
            # only way it could is a pass that failed before writing status, and then every
            # create below answers 409 (success) and the next pass (the resync loop's) observes
            # for real. Skipping three reads per new customization keeps a burst of creates fast.
            observed = Observed(now=self.clock(), drift=drift)
        else:
            observed = await self._observe(mc, owner, drift)
        decision = decide(mc, observed)
        for stage in _stages(decision.actions):
            await self._apply_round(mc, stage, owner)
        return Outcome(decision.status, decision, mc)

    def _invalid(self, body: Mapping[str, Any], message: str) -> Outcome:
        """Stalled on a spec that cannot run here; nothing is created."""
        return Outcome(self._stalled(body, "InvalidSpec", message), None)

    def _stalled(
        self, body: Mapping[str, Any], reason: str, message: str
    ) -> ModelCustomizationStatus:
        return stalled_status(
            _previous_status(body),
            reason=reason,
            message=message,
            generation=body.get("metadata", {}).get("generation"),
            now=self.clock(),
        )

    async def read_drift(self, mc: ModelCustomization) -> DriftReport | None:
        """The serving service's latest drift reading, or None when it cannot be had now."""
        status = mc.status
        if status is None or status.endpoint is None:
            return None
        timeout = aiohttp.ClientTimeout(total=5)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(f"{status.endpoint}/drift") as response,
            ):
                if response.status != 200:
                    return None
                return drift_report(await response.json())
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            _log.info("No drift reading from %s: %s", status.endpoint, exc)
            return None

    async def _observe(
        self, mc: ModelCustomization, owner: objects.OwnerRef, drift: DriftReport | None
    ) -> Observed:
        namespace = mc.metadata.namespace
        name = mc.metadata.name
        selector = f"{CUSTOMIZATION_LABEL}={name}"
        # Only this customization's children (by owner uid): an earlier customization of this
        # name may still have versions, Jobs and a Deployment awaiting the garbage collector.
        version_items = await self.api.list(
            resource_path(API_VERSION, VERSIONS, namespace), selector
        )
        versions = read.parse_versions(
            item for item in version_items if objects.owned_by(item, owner.uid)
        )
        trainer = f"{selector},{COMPONENT_LABEL}={TRAINER}"
        jobs = [
            job
            for job in await self.api.list(resource_path("batch/v1", "jobs", namespace), trainer)
            if objects.owned_by(job, owner.uid)
        ]
        pods = await self.api.list(resource_path("v1", "pods", namespace), trainer) if jobs else []
        deployment_path = resource_path(
            "apps/v1", "deployments", namespace, objects.serving_name(name)
        )
        deployment = await self.api.get(deployment_path)
        if deployment is not None and objects.owned_by_another(deployment, owner.uid):
            # Its pods serve the earlier customization's model: removed now (the collector would
            # soon), so this customization's Deploy creates its own.
            await self.api.delete(deployment_path)
            deployment = None
        endpoint = f"http://{objects.serving_name(name)}.{namespace}.svc:{objects.SERVING_PORT}"
        return Observed(
            now=self.clock(),
            versions=tuple(versions),
            trainer_runs=tuple(read.trainer_runs(jobs, pods)),
            serving=read.serving_state(deployment, endpoint),
            drift=drift,
            approved_versions=approved_versions(mc.spec, versions),
        )

    async def _apply_round(
        self, mc: ModelCustomization, actions: list[Action], owner: objects.OwnerRef
    ) -> None:
        """Applies one round's actions concurrently; a new version goes with its first trainer."""
        created = {a.version.spec.version: a for a in actions if isinstance(a, CreateVersion)}
        started = {a.version: a for a in actions if isinstance(a, StartTrainer)}
        paired = created.keys() & started.keys()
        calls = [
            self._create_version_and_trainer(mc, created[n], started[n], owner)
            for n in sorted(paired)
        ]
        calls += [
            self._apply(mc, action, owner)
            for action in actions
            if not (isinstance(action, CreateVersion | StartTrainer) and _version(action) in paired)
        ]
        await _all(calls)

    async def _create_version_and_trainer(
        self,
        mc: ModelCustomization,
        create: CreateVersion,
        start: StartTrainer,
        owner: objects.OwnerRef,
    ) -> None:
        """A new version, its config and its Job at once; no trainer outlives a failed record."""
        results = await asyncio.gather(
            self._apply(mc, create, owner),
            self._start_trainer(mc, start, owner),
            return_exceptions=True,
        )
        if isinstance(results[0], BaseException):
            # The version was not recorded: its trainer must not run without it (a retry may
            # plan this version number from another spec).
            try:
                await self._remove_trainer(mc, start.version)
            except Exception as exc:  # the version's own failure is the one to raise
                _log.warning("Cannot remove the trainer of unrecorded v%s: %s", start.version, exc)
        _raise_worst(results)

    async def _apply(self, mc: ModelCustomization, action: Action, owner: objects.OwnerRef) -> None:
        namespace = mc.metadata.namespace or "default"
        name = mc.metadata.name
        if isinstance(action, CreateVersion):
            body = action.version.model_dump(mode="json", by_alias=True, exclude_none=True)
            body["metadata"]["ownerReferences"] = [owner.as_dict()]
            collection = resource_path(API_VERSION, VERSIONS, namespace)
            if not await self.api.create(collection, body):
                await self._adopt_version(f"{collection}/{body['metadata']['name']}", body)
        elif isinstance(action, SetVersionStatus):
            path = resource_path(
                API_VERSION, VERSIONS, namespace, version_name(name, action.version), "status"
            )
            await self.api.merge_patch(
                path, {"status": action.status.model_dump(mode="json", by_alias=True)}
            )
        elif isinstance(action, StartTrainer):
            await self._start_trainer(mc, action, owner)
        elif isinstance(action, StopTrainer):
            await self._remove_trainer(mc, action.version)
        elif isinstance(action, Deploy):
            await self._deploy(action, owner)
        elif isinstance(action, Undeploy):
            serving = objects.serving_name(name)
            for api_version, plural in (
                ("apps/v1", "deployments"),
                ("v1", "services"),
                ("policy/v1", "poddisruptionbudgets"),
            ):
                await self.api.delete(resource_path(api_version, plural, namespace, serving))
        elif isinstance(action, DeleteVersion):
            await self.api.delete(
                resource_path(API_VERSION, VERSIONS, namespace, version_name(name, action.version))
            )
            await self._remove_trainer(mc, action.version)
        elif isinstance(action, Event):
            await self._event(mc, owner, action)

    async def _adopt_version(self, path: str, wanted: dict[str, Any]) -> None:
        """A 409 on a version: success only when the one found is this owner's, of this spec.

        Otherwise the pass fails with a retryable conflict; a leftover of an earlier customization
        of the same name is deleted first, so the retry creates this one's.
        """
        existing = await self.api.get(path)
        if existing is not None and objects.version_is_current(existing, wanted):
            return
        name = wanted["metadata"]["name"]
        if existing is None or existing["metadata"].get("deletionTimestamp"):
            detail = "was being deleted"
        elif objects.owned_by(existing, wanted["metadata"]["ownerReferences"][0]["uid"]):
            # This customization's own record of another spec: the next pass observes it and
            # plans the next version number.
            raise ApiError(409, f"ModelVersion {name} exists for another spec; replanned", path)
        else:
            await self.api.delete(path)
            detail = "was left by an earlier customization of the same name; removed"
        raise ApiError(409, f"ModelVersion {name} {detail}; it is created on the next pass", path)

    async def _start_trainer(
        self, mc: ModelCustomization, action: StartTrainer, owner: objects.OwnerRef
    ) -> None:
        namespace = mc.metadata.namespace or "default"
        spec = action.spec
        if spec is None:  # not known from this pass: read it back
            version_object = version_name(mc.metadata.name, action.version)
            found = await self.api.get(
                resource_path(API_VERSION, VERSIONS, namespace, version_object)
            )
            if found is None:
                raise RuntimeError(f"ModelVersion {version_object} vanished before its trainer")
            spec = read.parse_versions([found])[0].spec
        # Both owned by the customization, not the version: neither needs the version's uid, so
        # a new version, its config and its Job are written at once (one round trip to a Job).
        wanted = (
            (
                resource_path("v1", "configmaps", namespace),
                objects.trainer_configmap(spec, action.config, namespace, owner),
            ),
            (
                resource_path("batch/v1", "jobs", namespace),
                objects.trainer_job(
                    spec,
                    action.shape or trainer_shape(spec),
                    action.attempt,
                    namespace,
                    owner,
                    self.images,
                ),
            ),
        )
        results = await asyncio.gather(
            *(self._create_trainer_object(collection, body) for collection, body in wanted),
            return_exceptions=True,
        )
        _raise_worst(results)
        leftovers = [path for path in results if isinstance(path, str)]
        if leftovers:
            # The Job may have started with a leftover config: both go, and the next pass (in
            # seconds: a conflict is retried soon) writes them again once the names are free.
            await _all(self.api.delete(f"{c}/{body['metadata']['name']}") for c, body in wanted)
            raise ApiError(
                409,
                f"a leftover of another spec or an earlier customization named "
                f"{mc.metadata.name!r} was in the way of v{action.version}'s trainer; "
                "removed, it starts on the next pass",
                leftovers[0],
            )

    async def _create_trainer_object(self, collection: str, body: dict[str, Any]) -> str | None:
        """Creates a trainer object; answers the path of a leftover found in its place, if any.

        Creating twice is success, but only when what exists is this trainer's: the same
        version number can be planned again from another spec after its first record failed.
        """
        if await self.api.create(collection, body):
            return None
        path = f"{collection}/{body['metadata']['name']}"
        existing = await self.api.get(path)
        if existing is not None and objects.trainer_object_is_current(existing, body):
            return None
        return path

    async def _remove_trainer(self, mc: ModelCustomization, version: int) -> None:
        """Deletes every trainer Job of a version and its config (superseded or deleted)."""
        namespace = mc.metadata.namespace or "default"
        selector = (
            f"{CUSTOMIZATION_LABEL}={mc.metadata.name},{COMPONENT_LABEL}={TRAINER},"
            f"{VERSION_LABEL}={version}"
        )
        jobs_path = resource_path("batch/v1", "jobs", namespace)
        jobs = [
            f"{jobs_path}/{job['metadata']['name']}"
            for job in await self.api.list(jobs_path, selector)
        ]
        config = resource_path(
            "v1", "configmaps", namespace, objects.trainer_configmap_name(mc.metadata.name, version)
        )
        await _all(self.api.delete(path) for path in [*jobs, config])

    async def _deploy(self, action: Deploy, owner: objects.OwnerRef) -> None:
        shape = action.serving
        namespace = shape.namespace
        serving = objects.serving_name(shape.customization)
        await self.api.apply(
            resource_path("apps/v1", "deployments", namespace, serving),
            objects.serving_deployment(shape, owner, self.images),
        )
        await self.api.apply(
            resource_path("v1", "services", namespace, serving),
            objects.serving_service(shape.customization, namespace, owner),
        )
        pdb_path = resource_path("policy/v1", "poddisruptionbudgets", namespace, serving)
        if shape.replicas > 1:
            await self.api.apply(
                pdb_path, objects.serving_pdb(shape.customization, namespace, owner)
            )
        else:
            await self.api.delete(pdb_path)

    async def _event(self, mc: ModelCustomization, owner: objects.OwnerRef, event: Event) -> None:
        namespace = mc.metadata.namespace or "default"
        now = self.clock().isoformat().replace("+00:00", "Z")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{mc.metadata.name}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": owner.api_version,
                "kind": owner.kind,
                "name": owner.name,
                "namespace": namespace,
                "uid": owner.uid,
            },
            "reason": event.reason,
            "message": event.message[:1024],
            "type": event.type,
            "source": {"component": "bespoke-operator"},
            "reportingComponent": "bespoke.dev/operator",
            "reportingInstance": "bespoke-operator",
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await self.api.create(resource_path("v1", "events", namespace), body)


def _stages(actions: Iterable[Action]) -> list[list[Action]]:
    """Actions grouped into rounds that run concurrently, one round after the other.

    Objects are created, changed and deleted first; then version statuses (the status
    subresource of a version created in the first round); Events last, since the objects they
    describe come first. Within a round no action depends on another.
    """
    rounds: list[list[Action]] = [[], [], []]
    for action in actions:
        index = 2 if isinstance(action, Event) else 1 if isinstance(action, SetVersionStatus) else 0
        rounds[index].append(action)
    return [r for r in rounds if r]


async def _all(calls: Iterable[Awaitable[Any]]) -> None:
    """Awaits calls concurrently; when any fail, the worst failure is raised after all end."""
    _raise_worst(await asyncio.gather(*calls, return_exceptions=True))


def _raise_worst(results: Iterable[Any]) -> None:
    """Raises the failure that matters most among concurrent results, logging the others.

    An API error a person must fix (it is written into status as Stalled) comes first, then
    anything unexpected, then errors that heal on their own (retried soonest).
    """
    failures = [r for r in results if isinstance(r, BaseException)]
    if not failures:
        return
    worst = min(failures, key=_severity)
    for other in failures:
        if other is not worst:
            _log.warning("Also failed in the same round: %r", other)
    raise worst


def _severity(exc: BaseException) -> int:
    if isinstance(exc, ApiError):
        return 2 if exc.retryable else 0
    return 1


def _version(action: CreateVersion | StartTrainer) -> int:
    return action.version.spec.version if isinstance(action, CreateVersion) else action.version


def _relative_locations(mc: ModelCustomization) -> str:
    """Why the spec cannot run on a cluster: relative paths, which only `bespoke run` resolves."""
    relative = [f"{path}: {uri}" for path, uri in mc.spec.locations() if is_relative_location(uri)]
    if not relative:
        return ""
    return (
        f"{'; '.join(relative)}: a relative path is resolved against the file by `bespoke run` "
        "only; on a cluster use pvc://claim/path, s3://bucket/key, hf://org/name or an "
        "absolute path inside the image"
    )


def _previous_status(body: Mapping[str, Any]) -> ModelCustomizationStatus | None:
    try:
        return ModelCustomizationStatus.model_validate(body.get("status") or {})
    except ValidationError:
        return None
