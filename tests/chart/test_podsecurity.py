"""The Pod Security `restricted` checker itself: it passes a compliant pod and names each breach."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.chart.podsecurity import check_restricted, pod_spec_of

COMPLIANT: dict[str, Any] = {
    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [
        {
            "name": "app",
            "image": "example:1",
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
            },
        }
    ],
    "volumes": [{"name": "tmp", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "c"}}],
}


def _breach(path: str, value: Any) -> dict[str, Any]:
    spec = copy.deepcopy(COMPLIANT)
    node: Any = spec
    *parents, last = path.split(".")
    for part in parents:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    node[last] = value
    return spec


def test_compliant_pod_passes() -> None:
    assert check_restricted(COMPLIANT) == []


BREACHES = [
    ("hostNetwork", True, "host namespaces"),
    ("volumes", [{"name": "h", "hostPath": {"path": "/"}}], "volume types"),
    ("securityContext.runAsNonRoot", False, "running as non-root"),
    ("securityContext.runAsUser", 0, "non-root user"),
    ("securityContext.seccompProfile", {"type": "Unconfined"}, "seccomp"),
    ("securityContext.sysctls", [{"name": "kernel.msgmax", "value": "1"}], "sysctls"),
    ("containers.0.securityContext.allowPrivilegeEscalation", True, "privilege escalation"),
    ("containers.0.securityContext.privileged", True, "privileged"),
    ("containers.0.securityContext.capabilities", {"drop": ["NET_RAW"]}, "must drop ALL"),
    (
        "containers.0.securityContext.capabilities",
        {"drop": ["ALL"], "add": ["SYS_ADMIN"]},
        "may add only",
    ),
    ("containers.0.securityContext.seccompProfile", {"type": "Unconfined"}, "seccomp"),
    ("containers.0.securityContext.procMount", "Unmasked", "/proc mount"),
    ("containers.0.securityContext.seLinuxOptions", {"user": "root"}, "SELinux"),
    ("containers.0.securityContext.appArmorProfile", {"type": "Unconfined"}, "AppArmor"),
    ("containers.0.ports", [{"containerPort": 80, "hostPort": 80}], "host ports"),
]


@pytest.mark.parametrize(
    ("path", "value", "control"), BREACHES, ids=[b[0] + "=" + str(b[1]) for b in BREACHES]
)
def test_each_breach_is_named(path: str, value: Any, control: str) -> None:
    problems = check_restricted(_breach(path, value))
    assert problems, f"{path}={value} went unnoticed"
    assert any(control in p for p in problems), problems


def test_init_containers_are_checked_too() -> None:
    spec = copy.deepcopy(COMPLIANT)
    spec["initContainers"] = [{"name": "init", "image": "example:1"}]
    problems = check_restricted(spec)
    assert any("initContainers[init]" in p and "privilege escalation" in p for p in problems)
    assert any("initContainers[init]" in p and "must drop ALL" in p for p in problems)


def test_apparmor_annotation_is_checked() -> None:
    metadata = {"annotations": {"container.apparmor.security.beta.kubernetes.io/app": "unconfined"}}
    assert any("AppArmor" in p for p in check_restricted(COMPLIANT, metadata))


def test_pod_spec_of_finds_the_template_of_each_workload() -> None:
    template = {"metadata": {"labels": {"a": "b"}}, "spec": COMPLIANT}
    job = {"kind": "Job", "spec": {"template": template}}
    cronjob = {"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": template}}}}
    for manifest in (job, cronjob, {"kind": "Deployment", "spec": {"template": template}}):
        assert pod_spec_of(manifest) == (template["metadata"], COMPLIANT)
    with pytest.raises(ValueError, match="`Service`"):
        pod_spec_of({"kind": "Service", "spec": {}})
