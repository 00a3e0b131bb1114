"""Builds the child objects of a customization: trainer ConfigMap and Job, serving Deployment,
Service and PodDisruptionBudget. Pure functions of the spec; names are deterministic."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from bespoke_operator.api import ModelVersionSpec
from bespoke_operator.constants import (
    ATTEMPT_LABEL,
    COMPONENT_LABEL,
    CUSTOMIZATION_LABEL,
    INSTANCE_LABEL,
    MANAGED_BY_LABEL,
    NAME_LABEL,
    PART_OF,
    PART_OF_LABEL,
    QUEUE_LABEL,
    SERVING,
    TRAINER,
    TRAINING_HASH_ANNOTATION,
    VERSION_LABEL,
)
from bespoke_operator.reconcile.decide import PERMANENT_EXIT_CODES, version_name
from bespoke_operator.reconcile.serving import ServingShape
from bespoke_operator.reconcile.trainer_config import TrainerShape

__all__ = [
    "CONFIG_KEY",
    "PVC_ROOT",
    "SERVING_HASH_ANNOTATION",
    "TRAINER_CONTAINER",
    "Images",
    "OwnerRef",
    "owned_by",
    "owned_by_another",
    "serving_deployment",
    "serving_name",
    "serving_pdb",
    "serving_service",
    "trainer_configmap",
    "trainer_job",
    "trainer_job_name",
    "trainer_object_is_current",
    "version_is_current",
]

PVC_ROOT: Final = "/mnt/pvc"
CONFIG_KEY: Final = "config.json"
TRAINER_CONTAINER: Final = "trainer"
SERVING_PORT: Final = 3000
_PART_OF: Final = {PART_OF_LABEL: PART_OF, MANAGED_BY_LABEL: PART_OF}
#: On the serving Deployment: the hash of the serving shape it was made from.
SERVING_HASH_ANNOTATION: Final = "bespoke.dev/serving-hash"


@dataclass(frozen=True)
class Images:
    """Default images, set by the chart to the operator's own version."""

    trainer: str
    serving: str


@dataclass(frozen=True)
class OwnerRef:
    """The owner reference every child carries, so deletion garbage-collects it."""

    api_version: str
    kind: str
    name: str
    uid: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def trainer_job_name(customization: str, version: int, attempt: int) -> str:
    """The Job of one trainer attempt."""
    return f"{version_name(customization, version)}-train-{attempt}"


def trainer_configmap_name(customization: str, version: int) -> str:
    """The trainer config of a version (shared by its attempts)."""
    return f"{version_name(customization, version)}-trainer"


def serving_name(customization: str) -> str:
    """The Deployment, Service and PodDisruptionBudget serving a customization."""
    return f"{customization}-serving"


def _labels(customization: str, component: str, **extra: str) -> dict[str, str]:
    return {
        **_PART_OF,
        NAME_LABEL: f"bespoke-{component}",
        INSTANCE_LABEL: customization,
        COMPONENT_LABEL: component,
        CUSTOMIZATION_LABEL: customization,
        **extra,
    }


def _metadata(
    name: str,
    namespace: str,
    labels: dict[str, str],
    owner: OwnerRef,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": labels,
        "ownerReferences": [owner.as_dict()],
    }
    if annotations:
        metadata["annotations"] = annotations
    return metadata


def _trainer_metadata(
    name: str, namespace: str, labels: dict[str, str], owner: OwnerRef, version: ModelVersionSpec
) -> dict[str, Any]:
    annotations = {TRAINING_HASH_ANNOTATION: version.training_hash}
    return _metadata(name, namespace, labels, owner, annotations)


def owned_by_another(obj: dict[str, Any], customization_uid: str) -> bool:
    """Whether a child belongs to another customization of the same name (an earlier one)."""
    return any(
        ref.get("kind") == "ModelCustomization" and ref.get("uid") != customization_uid
        for ref in obj.get("metadata", {}).get("ownerReferences", [])
    )


def owned_by(obj: dict[str, Any], customization_uid: str) -> bool:
    """Whether a child is this customization's (its owner reference names this uid)."""
    return any(
        ref.get("kind") == "ModelCustomization" and ref.get("uid") == customization_uid
        for ref in obj.get("metadata", {}).get("ownerReferences", [])
    )


def version_is_current(existing: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether a ModelVersion found under the wanted one's name is that version, not a leftover.

    Only a version of this customization (owner uid) made from the same spec (training hash) is
    adopted on a 409: one left by an earlier customization of the same name (deleted and created
    again, its children awaiting the garbage collector) would serve that one's artifacts.
    """
    if existing.get("metadata", {}).get("deletionTimestamp"):
        return False
    uid = wanted["metadata"]["ownerReferences"][0]["uid"]
    found = (existing.get("spec") or {}).get("trainingHash")
    return owned_by(existing, uid) and found == wanted["spec"]["trainingHash"]


def trainer_object_is_current(existing: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether a trainer object found under the wanted one's name is that object, not a leftover.

    A leftover is one being deleted, one owned by another customization of the same name (deleted
    and created again), or one made for another spec: a version number planned again after its
    first record failed. Objects written before the training hash was recorded count as current.
    """
    metadata = existing.get("metadata", {})
    if metadata.get("deletionTimestamp"):
        return False
    wanted_metadata = wanted["metadata"]
    if owned_by_another(existing, wanted_metadata["ownerReferences"][0]["uid"]):
        return False
    found = (metadata.get("annotations") or {}).get(TRAINING_HASH_ANNOTATION)
    return found in (None, wanted_metadata["annotations"][TRAINING_HASH_ANNOTATION])


def trainer_configmap(
    version: ModelVersionSpec, config: dict[str, Any], namespace: str, owner: OwnerRef
) -> dict[str, Any]:
    """The trainer config as a ConfigMap (mounted read-only into the trainer pod)."""
    name = trainer_configmap_name(version.customization, version.version)
    labels = _labels(version.customization, TRAINER, **{VERSION_LABEL: str(version.version)})
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _trainer_metadata(name, namespace, labels, owner, version),
        # Compact: an indented dump goes through json's pure-Python encoder, several times slower.
        "data": {CONFIG_KEY: json.dumps(config, sort_keys=True, separators=(",", ":"))},
    }


def _pvc_claims(uris: Iterable[str | None]) -> list[str]:
    claims = {
        u.removeprefix("pvc://").split("/", 1)[0] for u in uris if u and u.startswith("pvc://")
    }
    return sorted(claims)


def _volumes(
    claims: list[str], extra: list[dict[str, Any]], scratch: str
) -> tuple[list[Any], list[Any]]:
    # /tmp is the only writable path (read-only root): bounded, so a runaway download or cache
    # evicts this pod instead of filling the node's disk.
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {"sizeLimit": scratch}}, *extra]
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    for index, claim in enumerate(claims):
        volumes.append({"name": f"pvc-{index}", "persistentVolumeClaim": {"claimName": claim}})
        mounts.append({"name": f"pvc-{index}", "mountPath": f"{PVC_ROOT}/{claim}"})
    return volumes, mounts


def _pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "runAsGroup": 1000,
        "fsGroup": 1000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _resources(gpus: int, cpu: str, memory: str, scratch: str) -> dict[str, Any]:
    # The scratch request lets the scheduler place the pod where its /tmp fits.
    requests: dict[str, Any] = {"cpu": cpu, "memory": memory, "ephemeral-storage": scratch}
    limits: dict[str, Any] = {"memory": memory}
    if gpus:
        requests["nvidia.com/gpu"] = str(gpus)
        limits["nvidia.com/gpu"] = str(gpus)
    return {"requests": requests, "limits": limits}


def _common_env(secret: str | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    env = [
        {"name": "BESPOKE_PVC_ROOT", "value": PVC_ROOT},
        {"name": "HOME", "value": "/tmp"},
        {"name": "HF_HOME", "value": "/tmp/huggingface"},
    ]
    env_from = [{"secretRef": {"name": secret}}] if secret else []
    return env, env_from


def trainer_job(
    version: ModelVersionSpec,
    shape: TrainerShape,
    attempt: int,
    namespace: str,
    owner: OwnerRef,
    images: Images,
) -> dict[str, Any]:
    """The Job that runs one attempt of a version's trainer, in the shape the core decided."""
    name = trainer_job_name(version.customization, version.version, attempt)
    configmap = trainer_configmap_name(version.customization, version.version)
    labels = _labels(
        version.customization,
        TRAINER,
        **{VERSION_LABEL: str(version.version), ATTEMPT_LABEL: str(attempt)},
    )
    if shape.queue_name:
        labels[QUEUE_LABEL] = shape.queue_name
    config_volume = {"name": "config", "configMap": {"name": configmap}}
    resources = shape.resources
    scratch = resources.ephemeral_storage
    volumes, mounts = _volumes(_pvc_claims(shape.reads), [config_volume], scratch)
    mounts.append({"name": "config", "mountPath": "/etc/bespoke", "readOnly": True})
    env, env_from = _common_env(shape.secret_name)
    container: dict[str, Any] = {
        "name": TRAINER_CONTAINER,
        "image": shape.image or images.trainer,
        "args": ["--config", f"/etc/bespoke/{CONFIG_KEY}"],
        "env": env,
        "resources": _resources(resources.gpus, resources.cpu, resources.memory, scratch),
        "volumeMounts": mounts,
        "securityContext": _container_security(),
        # The trainer writes its JSON summary here; the operator reads it from the pod status.
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if env_from:
        container["envFrom"] = env_from
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "securityContext": _pod_security(),
        "containers": [container],
        "volumes": volumes,
    }
    if shape.node_selector:
        pod_spec["nodeSelector"] = dict(shape.node_selector)
    if shape.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in shape.tolerations]
    if shape.priority_class_name:
        pod_spec["priorityClassName"] = shape.priority_class_name
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _trainer_metadata(name, namespace, labels, owner, version),
        "spec": {
            # Retries are attempts counted by the operator; the Job itself never retries a
            # real failure, but a pod lost to preemption or eviction is replaced for free.
            "backoffLimit": 0,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "Ignore",
                        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                    },
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": TRAINER_CONTAINER,
                            "operator": "In",
                            "values": sorted(PERMANENT_EXIT_CODES),
                        },
                    },
                ]
            },
            "activeDeadlineSeconds": shape.deadline_seconds,
            "ttlSecondsAfterFinished": 7 * 24 * 3600,
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def serving_deployment(shape: ServingShape, owner: OwnerRef, images: Images) -> dict[str, Any]:
    """The Deployment of a serving shape (a zero-downtime rolling update moves it)."""
    customization = shape.customization
    name = serving_name(customization)
    selector = {
        INSTANCE_LABEL: customization,
        COMPONENT_LABEL: SERVING,
    }
    labels = _labels(customization, SERVING, **{VERSION_LABEL: str(shape.version)})
    common, env_from = _common_env(shape.secret_name)
    env = common + [{"name": k, "value": v} for k, v in shape.env.items()]
    volumes, mounts = _volumes(_pvc_claims(shape.reads), [], shape.resources.ephemeral_storage)
    timings = shape.probes
    probe = {
        "httpGet": {"port": "http"},
        "periodSeconds": timings.period_seconds,
        "timeoutSeconds": timings.timeout_seconds,
    }
    resources = shape.resources
    container: dict[str, Any] = {
        "name": "serving",
        "image": shape.image or images.serving,
        "ports": [{"name": "http", "containerPort": SERVING_PORT, "protocol": "TCP"}],
        "env": env,
        "resources": _resources(
            resources.gpus, resources.cpu, resources.memory, resources.ephemeral_storage
        ),
        "volumeMounts": mounts,
        "securityContext": _container_security(),
        "readinessProbe": {**probe, "httpGet": {"path": "/readyz", "port": "http"}},
        "livenessProbe": {
            **probe,
            "httpGet": {"path": "/healthz", "port": "http"},
            "initialDelaySeconds": timings.liveness_initial_delay_seconds,
            "failureThreshold": timings.liveness_failure_threshold,
        },
        "startupProbe": {
            **probe,
            "httpGet": {"path": "/healthz", "port": "http"},
            "failureThreshold": timings.startup_failure_threshold,
        },
    }
    if env_from:
        container["envFrom"] = env_from
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(
            name,
            shape.namespace,
            labels,
            owner,
            {SERVING_HASH_ANNOTATION: shape.serving_hash} if shape.serving_hash else None,
        ),
        "spec": {
            "replicas": shape.replicas,
            "selector": {"matchLabels": selector},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": _pod_security(),
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def serving_service(customization: str, namespace: str, owner: OwnerRef) -> dict[str, Any]:
    """The ClusterIP Service in front of the serving pods (the customization's endpoint)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(
            serving_name(customization), namespace, _labels(customization, SERVING), owner
        ),
        "spec": {
            "type": "ClusterIP",
            "selector": {
                INSTANCE_LABEL: customization,
                COMPONENT_LABEL: SERVING,
            },
            "ports": [{"name": "http", "port": SERVING_PORT, "targetPort": "http"}],
        },
    }


def serving_pdb(customization: str, namespace: str, owner: OwnerRef) -> dict[str, Any]:
    """Keeps one serving pod through voluntary disruptions (only when replicas > 1)."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(
            serving_name(customization), namespace, _labels(customization, SERVING), owner
        ),
        "spec": {
            "minAvailable": 1,
            "selector": {
                "matchLabels": {
                    INSTANCE_LABEL: customization,
                    COMPONENT_LABEL: SERVING,
                }
            },
        },
    }
