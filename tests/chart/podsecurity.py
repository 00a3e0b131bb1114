"""A Pod Security Standards `restricted` checker for pod specs, shared by chart and operator tests.

It follows the Kubernetes "restricted" profile (latest version, which includes every "baseline"
control): https://kubernetes.io/docs/concepts/security/pod-security-standards/ . Each violation
is reported as one message naming the control and the container, so a failing test says what to
fix. The API server's own admission check is the final word; this lets unit tests catch a
regression without a cluster.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["check_restricted", "pod_spec_of"]

# Volume types the restricted profile allows.
_ALLOWED_VOLUMES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
_SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)
_SELINUX_TYPES = frozenset(
    {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
)
_SECCOMP_OK = frozenset({"RuntimeDefault", "Localhost"})
_APPARMOR_OK = frozenset({"RuntimeDefault", "Localhost"})

Spec = Mapping[str, Any]


def pod_spec_of(manifest: Spec) -> tuple[Spec, Spec]:
    """Return (pod metadata, pod spec) of a Pod or of any workload's pod template."""
    kind = manifest.get("kind")
    if kind == "Pod":
        return manifest.get("metadata", {}), manifest["spec"]
    if kind == "CronJob":
        template = manifest["spec"]["jobTemplate"]["spec"]["template"]
    elif kind in {"Deployment", "Job", "StatefulSet", "DaemonSet", "ReplicaSet"}:
        template = manifest["spec"]["template"]
    else:
        raise ValueError(f"`{kind}` has no pod template")
    return template.get("metadata", {}), template["spec"]


def _containers(spec: Spec) -> Iterator[tuple[str, Spec]]:
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(field) or []:
            yield f"{field}[{container.get('name', '?')}]", container


def check_restricted(spec: Spec, metadata: Spec | None = None) -> list[str]:
    """Return every way a pod spec breaks the `restricted` profile; empty when it complies."""
    problems: list[str] = []
    pod_sc: Spec = spec.get("securityContext") or {}
    annotations: Spec = (metadata or {}).get("annotations") or {}

    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            problems.append(f"host namespaces: spec.{field} must be unset or false")
    for volume in spec.get("volumes") or []:
        kinds = [key for key in volume if key != "name"]
        if any(kind not in _ALLOWED_VOLUMES for kind in kinds):
            problems.append(f"volume types: volume {volume.get('name')!r} uses {kinds}")
    for sysctl in pod_sc.get("sysctls") or []:
        if sysctl.get("name") not in _SAFE_SYSCTLS:
            problems.append(f"sysctls: {sysctl.get('name')!r} is not a safe sysctl")
    if (pod_sc.get("windowsOptions") or {}).get("hostProcess"):
        problems.append("host process: pod windowsOptions.hostProcess must be false")
    problems += _check_selinux("pod", pod_sc)
    problems += _check_apparmor("pod", pod_sc)
    for key, value in annotations.items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and not (
            value == "runtime/default" or str(value).startswith("localhost/")
        ):
            problems.append(f"AppArmor: annotation {key}={value!r} is not allowed")
    if pod_sc.get("runAsUser") == 0:
        problems.append("running as non-root user: pod runAsUser must not be 0")
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")
    if pod_seccomp is not None and pod_seccomp not in _SECCOMP_OK:
        problems.append(f"seccomp: pod seccompProfile.type {pod_seccomp!r} is not allowed")

    for where, container in _containers(spec):
        problems += _check_container(where, container, pod_sc)
    return problems


def _check_container(where: str, container: Spec, pod_sc: Spec) -> list[str]:
    problems: list[str] = []
    sc: Spec = container.get("securityContext") or {}
    if sc.get("privileged"):
        problems.append(f"privileged: {where} must not be privileged")
    for port in container.get("ports") or []:
        if port.get("hostPort"):
            problems.append(f"host ports: {where} uses hostPort {port['hostPort']}")
    if sc.get("procMount", "Default") != "Default":
        problems.append(f"/proc mount type: {where} procMount must be Default")
    if (sc.get("windowsOptions") or {}).get("hostProcess"):
        problems.append(f"host process: {where} windowsOptions.hostProcess must be false")
    problems += _check_selinux(where, sc)
    problems += _check_apparmor(where, sc)
    if sc.get("allowPrivilegeEscalation") is not False:
        problems.append(f"privilege escalation: {where} must set allowPrivilegeEscalation: false")
    run_as_non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
    if run_as_non_root is not True:
        problems.append(f"running as non-root: {where} (or the pod) must set runAsNonRoot: true")
    if sc.get("runAsUser") == 0:
        problems.append(f"running as non-root user: {where} runAsUser must not be 0")
    seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
    if seccomp not in _SECCOMP_OK:
        problems.append(
            f"seccomp: {where} (or the pod) must set seccompProfile.type"
            " RuntimeDefault or Localhost"
        )
    capabilities: Spec = sc.get("capabilities") or {}
    if "ALL" not in (capabilities.get("drop") or []):
        problems.append(f"capabilities: {where} must drop ALL")
    added = [cap for cap in capabilities.get("add") or [] if cap != "NET_BIND_SERVICE"]
    if added:
        problems.append(f"capabilities: {where} may add only NET_BIND_SERVICE, adds {added}")
    return problems


def _check_selinux(where: str, sc: Spec) -> list[str]:
    options: Spec = sc.get("seLinuxOptions") or {}
    problems = []
    if options.get("type", "") not in _SELINUX_TYPES:
        problems.append(f"SELinux: {where} seLinuxOptions.type {options.get('type')!r}")
    if options.get("user") or options.get("role"):
        problems.append(f"SELinux: {where} must not set seLinuxOptions.user or role")
    return problems


def _check_apparmor(where: str, sc: Spec) -> list[str]:
    profile = (sc.get("appArmorProfile") or {}).get("type")
    if profile is not None and profile not in _APPARMOR_OK:
        return [f"AppArmor: {where} appArmorProfile.type {profile!r} is not allowed"]
    return []
