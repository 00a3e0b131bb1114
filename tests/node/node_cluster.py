"""A real single-node Kubernetes inside a network namespace of its own, for the node tier.

:class:`NodeCluster` creates a network namespace with one veth pair inside it (the node address
``10.250.0.2``: no end of it lives on the host), and starts in that namespace etcd,
kube-apiserver, kube-controller-manager (from ``hack/envtest.sh``), kube-scheduler, containerd,
kubelet, kube-proxy and CoreDNS (from ``hack/node.sh``). Pods get ``10.244.0.0/24`` from the CNI
bridge plugin, Services ``10.0.0.0/24`` from kube-proxy's iptables rules, names from CoreDNS at the
node address. Every address lives in the namespace: the tests reach the cluster only through
``nsenter`` (:meth:`NodeCluster.kubectl`, :meth:`NodeCluster.run_in_node`).

Teardown goes by process id: each process group but containerd's gets SIGTERM (SIGKILL if it
lingers), kubelet first; every container still running is killed through containerd, which then
stops; the kubelet's and containerd's mounts are unmounted, the pods' network namespaces and the
node's are removed, then the work directories. Needs root (namespaces, mounts,
iptables, cgroups).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import logging
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, TypeVar

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.operator.cluster.envtest_cluster import (
    K8S_VERSION,
    REPO_ROOT,
    die_with_parent,
    terminate_group,
)
from tests.operator.cluster.envtest_cluster import binary_dir as envtest_dir

__all__ = [
    "BASE_IMAGE",
    "NODE_IP",
    "PAUSE_IMAGE",
    "NodeCluster",
    "NodeError",
    "PrerequisiteError",
    "node_cache",
    "wait_until",
]

log = logging.getLogger(__name__)

NODE_NAME = "bespoke-node"
NODE_IP = "10.250.0.2"
POD_CIDR = "10.244.0.0/24"
SERVICE_CIDR = "10.0.0.0/24"
API_PORT = 6443
# The names hack/node.sh gives the images it builds.
PAUSE_IMAGE = "localhost/bespoke-node/pause:3.10"
BASE_IMAGE = "localhost/bespoke-node/python:3.11-bookworm"
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0
INSTALL_HINT = (
    "as root: apt-get install containerd runc containernetworking-plugins mmdebstrap conntrack "
    "iptables buildah podman, then run `hack/envtest.sh` and `hack/node.sh` (or `make test-node`)"
)
_T = TypeVar("_T")


class NodeError(RuntimeError):
    """A node process failed to start or to become ready."""


class PrerequisiteError(NodeError):
    """Something the node needs is not installed or built; the message says what to do."""


def node_cache() -> Path:
    """Where ``hack/node.sh`` caches the node binaries and images."""
    cache_root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_root) / "bespoke" / "node"


def wait_until(
    probe: Callable[[], _T], done: Callable[[_T], bool], *, timeout_s: float, interval: float = 1.0
) -> _T:
    """Call ``probe`` until ``done`` accepts its result or the bound passes; return the last.

    The bound only stops a hung run; the caller asserts on the state returned, never on time.
    """
    deadline = time.monotonic() + timeout_s
    result = probe()
    while not done(result) and time.monotonic() < deadline:
        time.sleep(interval)
        result = probe()
    return result


def _run(args: Sequence[str], *, check: bool = True, timeout: float = 120) -> str:
    result = subprocess.run(args, capture_output=True, text=True, check=False, timeout=timeout)
    if check and result.returncode != 0:
        raise NodeError(f"{' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


# -- PKI ---------------------------------------------------------------------------------------


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common)]
    if organization:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


@dataclass
class _Pki:
    directory: Path
    ca_key: ec.EllipticCurvePrivateKey = field(default_factory=_key)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.UTC)
        self.ca_name = _name("bespoke-node-ca")
        ca = (
            x509.CertificateBuilder()
            .subject_name(self.ca_name)
            .issuer_name(self.ca_name)
            .public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.ca_key, hashes.SHA256())
        )
        self.ca = self.directory / "ca.crt"
        self.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def issue(
        self, name: str, subject: x509.Name, *, server_names: Sequence[str] = ()
    ) -> tuple[Path, Path]:
        key = _key()
        now = datetime.datetime.now(datetime.UTC)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server_names else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server_names:
            alt: list[x509.GeneralName] = []
            for entry in server_names:
                try:
                    alt.append(x509.IPAddress(ipaddress.ip_address(entry)))
                except ValueError:
                    alt.append(x509.DNSName(entry))
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        cert_path, key_path = self.directory / f"{name}.crt", self.directory / f"{name}.key"
        cert_path.write_bytes(
            builder.sign(self.ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
        )
        key_path.write_bytes(_pem_key(key))
        key_path.chmod(0o600)
        return cert_path, key_path

    def kubeconfig(self, name: str, subject: x509.Name, server: str) -> Path:
        cert, key = self.issue(name, subject)
        path = self.directory / f"{name}.kubeconfig"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "node",
                    "cluster": {"server": server, "certificate-authority": str(self.ca)},
                }
            ],
            "users": [
                {"name": name, "user": {"client-certificate": str(cert), "client-key": str(key)}}
            ],
            "contexts": [{"name": "node", "context": {"cluster": "node", "user": name}}],
            "current-context": "node",
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path


# -- the node ----------------------------------------------------------------------------------


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def _tools() -> dict[str, Path]:
    """Every binary the node runs, or :class:`PrerequisiteError` naming what to install."""
    node_bin = node_cache() / K8S_VERSION
    wanted = {
        "etcd": envtest_dir() / "etcd",
        "kube-apiserver": envtest_dir() / "kube-apiserver",
        "kube-controller-manager": envtest_dir() / "kube-controller-manager",
        "kube-scheduler": node_bin / "kube-scheduler",
        "kubelet": node_bin / "kubelet",
        "kube-proxy": node_bin / "kube-proxy",
        "coredns": node_bin / "coredns",
        "bridge": Path("/usr/lib/cni/bridge"),
    }
    for program in ("containerd", "containerd-shim-runc-v2", "runc", "ctr", "ip", "nsenter"):
        found = shutil.which(program)
        wanted[program] = Path(found) if found else Path("/nonexistent") / program
    for program in ("iptables", "conntrack", "buildah"):
        found = shutil.which(program) or shutil.which(program, path="/usr/sbin:/sbin")
        wanted[program] = Path(found) if found else Path("/nonexistent") / program
    missing = [f"{name} ({path})" for name, path in wanted.items() if not os.access(path, os.X_OK)]
    images = [node_cache() / "images" / f"{name}.tar" for name in ("pause", "base")]
    missing += [str(image) for image in images if not image.is_file()]
    if missing:
        raise PrerequisiteError(f"the node tier lacks {', '.join(missing)}: {INSTALL_HINT}")
    if os.geteuid() != 0:
        raise PrerequisiteError("the node tier runs as root (network namespaces, mounts, iptables)")
    return wanted


@dataclass
class NodeCluster:
    """One node and its control plane in a network namespace; a context manager."""

    work_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bespoke-node-")))
    netns: str = field(default_factory=lambda: f"bespoke-node-{uuid.uuid4().hex[:6]}")
    #: Host directories every container sees read-only (container path -> host path): the node
    #: tier's stand-in for files an image would carry (the project's virtualenv, its sources).
    host_mounts: dict[str, Path] = field(default_factory=dict)
    startup_seconds: float = 0.0
    _tools: dict[str, Path] = field(default_factory=dict)
    _processes: list[_Process] = field(default_factory=list)
    _netns_before: set[str] = field(default_factory=set)
    _containerd_dir: Path = Path()
    admin_kubeconfig: Path = Path()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def socket(self) -> Path:
        return self._containerd_dir / "containerd.sock"

    @property
    def server(self) -> str:
        return f"https://{NODE_IP}:{API_PORT}"

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        began = time.monotonic()
        self._tools = _tools()
        self._netns_before = set(os.listdir("/run/netns")) if Path("/run/netns").is_dir() else set()
        try:
            self._make_netns()
            pki = _Pki(self.work_dir / "pki")
            self._start_control_plane(pki)
            self._start_containerd()
            self.import_image(node_cache() / "images" / "pause.tar")
            self.import_image(node_cache() / "images" / "base.tar")
            self._start_node(pki)
            self._wait_node_ready()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        log.info("Node %s Ready in %.1fs (netns %s)", NODE_NAME, self.startup_seconds, self.netns)

    def stop(self) -> None:
        """Tear down everything this node started, by process id; safe to call twice."""
        # Everything but containerd, the kubelet first (reverse start order), so that nothing
        # restarts the containers killed next.
        for proc in reversed(self._processes):
            if proc.name != "containerd":
                terminate_group(proc.popen, STOP_TIMEOUT_S)
        if self.socket.exists():
            self._kill_leftover_containers()
        for proc in self._processes:
            terminate_group(proc.popen, STOP_TIMEOUT_S)
        self._processes.clear()
        # The kubelet's volume mounts, and containerd's sandbox /dev/shm mounts.
        self._unmount_under(self.work_dir)
        if self._containerd_dir != Path():
            self._unmount_under(self._containerd_dir)
        self._remove_pod_netns()
        if Path(f"/run/netns/{self.netns}").exists():
            _run([str(self._tools.get("ip", "ip")), "netns", "delete", self.netns], check=False)
        self._remove_cgroups()
        if os.environ.get("BESPOKE_NODE_KEEP") == "1":
            log.warning("Keeping the node's logs and data in %s", self.work_dir)
        else:
            shutil.rmtree(self.work_dir, ignore_errors=True)
        if self._containerd_dir != Path():
            shutil.rmtree(self._containerd_dir, ignore_errors=True)

    def _make_netns(self) -> None:
        ip = str(self._tools["ip"])
        _run([ip, "netns", "add", self.netns])
        # Both ends of the pair stay in the namespace: the node address exists nowhere else.
        _run(
            [ip, "-n", self.netns, "link", "add", "node0", "type", "veth", "peer", "name", "node1"]
        )
        _run([ip, "-n", self.netns, "addr", "add", f"{NODE_IP}/30", "dev", "node0"])
        for link in ("lo", "node0", "node1"):
            _run([ip, "-n", self.netns, "link", "set", link, "up"])
        # kubelet and kube-proxy look for the default route's interface.
        _run([ip, "-n", self.netns, "route", "add", "default", "dev", "node0"])
        self.run_in_node(["sysctl", "-qw", "net.ipv4.ip_forward=1"])

    def _nsenter(self) -> list[str]:
        # Not `ip netns exec`: that remounts /sys, and the kubelet would lose the cgroup mounts.
        return [str(self._tools["nsenter"]), f"--net=/run/netns/{self.netns}"]

    def run_in_node(
        self, args: Sequence[str], *, check: bool = True, timeout: float = 300, input_text: str = ""
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in the node's network namespace (the only place its addresses exist)."""
        result = subprocess.run(
            [*self._nsenter(), *args],
            input=input_text,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise NodeError(
                f"{' '.join(args)} failed ({result.returncode}): {result.stderr.strip()[-2000:]}"
            )
        return result

    def _spawn(self, name: str, args: Sequence[str]) -> _Process:
        log_path = self.work_dir / f"{name}.log"
        with log_path.open("wb") as log_file:
            popen = subprocess.Popen(
                [*self._nsenter(), str(self._tools[name]), *args],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,  # noqa: PLW1509 (only a prctl before exec)
                cwd=self.work_dir,
            )
        proc = _Process(name, popen, log_path)
        self._processes.append(proc)
        return proc

    def _start_control_plane(self, pki: _Pki) -> None:
        server = self.server
        serving = pki.issue(
            "apiserver",
            _name("kube-apiserver"),
            server_names=(
                NODE_IP,
                "127.0.0.1",
                str(next(ipaddress.ip_network(SERVICE_CIDR).hosts())),
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
        )
        kubelet_client = pki.issue(
            "apiserver-kubelet-client", _name("kube-apiserver", "system:masters")
        )
        sa_key = _key()
        (self.work_dir / "pki" / "sa.key").write_bytes(_pem_key(sa_key))
        (self.work_dir / "pki" / "sa.pub").write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        self.admin_kubeconfig = pki.kubeconfig("admin", _name("admin", "system:masters"), server)
        etcd = self._spawn(
            "etcd",
            [
                f"--data-dir={self.work_dir / 'etcd'}",
                "--listen-client-urls=http://127.0.0.1:2379",
                "--advertise-client-urls=http://127.0.0.1:2379",
                "--listen-peer-urls=http://127.0.0.1:2380",
                "--initial-advertise-peer-urls=http://127.0.0.1:2380",
                "--initial-cluster=default=http://127.0.0.1:2380",
                "--listen-metrics-urls=http://127.0.0.1:2381",
                "--log-level=warn",
                "--unsafe-no-fsync",
            ],
        )
        self._wait(etcd, ["curl", "-sf", "http://127.0.0.1:2381/health"])
        pki_dir = self.work_dir / "pki"
        apiserver = self._spawn(
            "kube-apiserver",
            [
                "--etcd-servers=http://127.0.0.1:2379",
                "--bind-address=0.0.0.0",
                f"--advertise-address={NODE_IP}",
                f"--secure-port={API_PORT}",
                f"--cert-dir={self.work_dir / 'apiserver-certs'}",
                f"--tls-cert-file={serving[0]}",
                f"--tls-private-key-file={serving[1]}",
                f"--client-ca-file={pki.ca}",
                f"--service-account-key-file={pki_dir / 'sa.pub'}",
                f"--service-account-signing-key-file={pki_dir / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                f"--kubelet-client-certificate={kubelet_client[0]}",
                f"--kubelet-client-key={kubelet_client[1]}",
                "--kubelet-preferred-address-types=InternalIP",
                "--v=1",
            ],
        )
        self._wait(apiserver, [*self._kubectl_args(), "get", "--raw", "/readyz"])
        kcm = pki.kubeconfig("kcm", _name("system:kube-controller-manager"), server)
        self._spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={kcm}",
                f"--authentication-kubeconfig={kcm}",
                f"--authorization-kubeconfig={kcm}",
                "--bind-address=127.0.0.1",
                "--secure-port=10257",
                f"--cert-dir={self.work_dir / 'kcm-certs'}",
                "--leader-elect=false",
                f"--service-account-private-key-file={pki_dir / 'sa.key'}",
                f"--root-ca-file={pki.ca}",
                "--use-service-account-credentials=true",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--v=1",
            ],
        )
        scheduler = pki.kubeconfig("scheduler", _name("system:kube-scheduler"), server)
        self._spawn(
            "kube-scheduler",
            [
                f"--kubeconfig={scheduler}",
                f"--authentication-kubeconfig={scheduler}",
                f"--authorization-kubeconfig={scheduler}",
                "--bind-address=127.0.0.1",
                "--secure-port=10259",
                "--leader-elect=false",
                "--v=1",
            ],
        )

    def _start_containerd(self) -> None:
        # State and socket under /run (a short socket path); images and snapshots in work_dir.
        self._containerd_dir = Path("/run") / self.netns
        self._containerd_dir.mkdir(parents=True, exist_ok=True)
        cni_dir = self.work_dir / "cni"
        cni_dir.mkdir()
        (cni_dir / "10-bespoke-bridge.conflist").write_text(
            json.dumps(
                {
                    "cniVersion": "0.4.0",
                    "name": "bespoke-pods",
                    "plugins": [
                        {
                            "type": "bridge",
                            "bridge": "cni0",
                            "isGateway": True,
                            "ipMasq": True,
                            "hairpinMode": True,
                            "ipam": {
                                "type": "host-local",
                                "ranges": [[{"subnet": POD_CIDR}]],
                                "routes": [{"dst": "0.0.0.0/0"}],
                                "dataDir": str(self._containerd_dir / "cni-ipam"),
                            },
                        },
                        {"type": "portmap", "capabilities": {"portMappings": True}},
                    ],
                }
            )
        )
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        # The runc runtime's base OCI spec carries host_mounts into every container.
        base_spec = f'base_runtime_spec = "{self._base_spec()}"' if self.host_mounts else ""
        config = f"""version = 2
root = "{self.work_dir / "containerd"}"
state = "{self._containerd_dir / "state"}"
[grpc]
  address = "{self.socket}"
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  enable_cdi = false
  # The VM lacks CAP_SYS_RESOURCE: runc could not raise oom_score_adj for the sandbox.
  restrict_oom_score_adj = true
  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      {base_spec}
      [{cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{self._containerd_dir / "runc"}"
  [{cri}.cni]
    bin_dir = "{self._tools["bridge"].parent}"
    conf_dir = "{cni_dir}"
"""
        path = self.work_dir / "containerd.toml"
        path.write_text(config)
        containerd = self._spawn("containerd", ["--config", str(path)])
        self._wait(containerd, [str(self._tools["ctr"]), "-a", str(self.socket), "version"])

    def _base_spec(self) -> Path:
        path = self.work_dir / "base-spec.json"
        if not path.exists():
            spec = json.loads(_run([str(self._tools["ctr"]), "oci", "spec"]))
            spec["mounts"] += [
                {
                    "destination": inside,
                    "type": "bind",
                    "source": str(host),
                    "options": ["rbind", "ro", "nosuid", "nodev"],
                }
                for inside, host in sorted(self.host_mounts.items())
            ]
            path.write_text(json.dumps(spec))
        return path

    def kill_container(self, container_id: str) -> None:
        """SIGKILL one container's processes through containerd (``containerd://<id>`` or id)."""
        task = container_id.removeprefix("containerd://")
        _run(
            [
                str(self._tools["ctr"]),
                "-a",
                str(self.socket),
                "-n",
                "k8s.io",
                "tasks",
                "kill",
                "-a",
                "-s",
                "SIGKILL",
                task,
            ]
        )

    def import_image(self, archive: Path) -> None:
        """Load a docker-archive into the node's containerd (the kubelet's image store)."""
        _run(
            [
                str(self._tools["ctr"]),
                "-a",
                str(self.socket),
                "-n",
                "k8s.io",
                "images",
                "import",
                str(archive),
            ],
            timeout=600,
        )

    def _start_node(self, pki: _Pki) -> None:
        server = self.server
        kubelet_config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": NODE_IP,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(pki.ca)},
            },
            "authorization": {"mode": "AlwaysAllow"},
            "cgroupDriver": "cgroupfs",
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "failSwapOn": False,
            "failCgroupV1": False,
            "clusterDomain": "cluster.local",
            "clusterDNS": [NODE_IP],
            "resolvConf": str(self._resolv_conf()),
            "rotateCertificates": False,
            "serverTLSBootstrap": False,
            "protectKernelDefaults": False,
            "makeIPTablesUtilChains": False,
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
            },
            "imageGCHighThresholdPercent": 99,
            "imageGCLowThresholdPercent": 98,
            "syncFrequency": "10s",
            "fileCheckFrequency": "10s",
            "nodeStatusReportFrequency": "10s",
            "maxPods": 30,
            "podLogsDir": str(self.work_dir / "pod-logs"),
        }
        config_path = self.work_dir / "kubelet.yaml"
        config_path.write_text(yaml.safe_dump(kubelet_config))
        kubelet = pki.kubeconfig(
            "kubelet", _name(f"system:node:{NODE_NAME}", "system:nodes"), server
        )
        self._spawn(
            "kubelet",
            [
                f"--config={config_path}",
                f"--kubeconfig={kubelet}",
                f"--hostname-override={NODE_NAME}",
                f"--node-ip={NODE_IP}",
                f"--root-dir={self.work_dir / 'kubelet'}",
                f"--cert-dir={self.work_dir / 'kubelet-certs'}",
                "--v=1",
            ],
        )
        proxy = pki.kubeconfig("kube-proxy", _name("system:kube-proxy"), server)
        self._spawn(
            "kube-proxy",
            [
                f"--kubeconfig={proxy}",
                f"--hostname-override={NODE_NAME}",
                "--proxy-mode=iptables",
                f"--cluster-cidr={POD_CIDR}",
                "--bind-address=127.0.0.1",
                "--healthz-bind-address=127.0.0.1:10256",
                "--metrics-bind-address=127.0.0.1:10249",
                # nf_conntrack_max is not per network namespace: leave the host's alone.
                "--conntrack-max-per-core=0",
                "--v=1",
            ],
        )
        corefile = self.work_dir / "Corefile"
        corefile.write_text(
            f""".:53 {{
    bind {NODE_IP}
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {self.admin_kubeconfig} node
        pods insecure
    }}
    cache 5
}}
"""
        )
        self._spawn("coredns", [f"-conf={corefile}"])

    def _resolv_conf(self) -> Path:
        # Pods get only the cluster's DNS: no search domain or server of the host leaks in.
        path = self.work_dir / "resolv.conf"
        path.write_text(f"nameserver {NODE_IP}\n")
        return path

    def _wait(self, proc: _Process, probe: Sequence[str]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        last = ""
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise NodeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")
            result = self.run_in_node(probe, check=False, timeout=30)
            if result.returncode == 0:
                return
            last = result.stderr.strip()[-300:]
            time.sleep(0.3)
        raise NodeError(f"{proc.name} never became ready ({last}):\n{proc.tail()}")

    def _wait_node_ready(self) -> None:
        kubelet = next(p for p in self._processes if p.name == "kubelet")
        jsonpath = '{.status.conditions[?(@.type=="Ready")].status}'
        self._wait(
            kubelet,
            [
                "sh",
                "-c",
                f"{' '.join(self._kubectl_args())} get node {NODE_NAME} "
                f"-o jsonpath='{jsonpath}' | grep -qx True",
            ],
        )
        self._wait(
            kubelet, [*self._kubectl_args(), "-n", "default", "get", "serviceaccount", "default"]
        )

    # -- clients -------------------------------------------------------------------------------

    def _kubectl_args(self) -> list[str]:
        kubectl = envtest_dir() / "kubectl"
        program = str(kubectl) if os.access(kubectl, os.X_OK) else shutil.which("kubectl")
        if program is None:
            raise PrerequisiteError(
                "kubectl is neither in the envtest cache nor on PATH: make tools"
            )
        return [program, f"--kubeconfig={self.admin_kubeconfig}"]

    def kubectl(
        self, *args: str, check: bool = True, input_text: str = "", timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """kubectl as cluster admin, run inside the node's network namespace."""
        return self.run_in_node(
            [*self._kubectl_args(), *args], check=check, input_text=input_text, timeout=timeout
        )

    def get_json(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.admin_kubeconfig)}

    def logs(self, name: str, lines: int = 60) -> str:
        """The tail of one node process's log (etcd, kubelet, containerd, ...)."""
        return next((p.tail(lines) for p in self._processes if p.name == name), "")

    # -- teardown ------------------------------------------------------------------------------

    def _kill_leftover_containers(self) -> None:
        ctr = [str(self._tools["ctr"]), "-a", str(self.socket), "-n", "k8s.io"]
        for task in _run([*ctr, "tasks", "ls", "-q"], check=False, timeout=30).split():
            _run([*ctr, "tasks", "kill", "-a", "-s", "SIGKILL", task], check=False, timeout=30)
            _run([*ctr, "tasks", "delete", "-f", task], check=False, timeout=30)

    def _unmount_under(self, root: Path) -> None:
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        ours = [m for m in mounts if m == str(root) or m.startswith(f"{root}/")]
        for mount in sorted(ours, key=len, reverse=True):
            _run(["umount", "-l", mount], check=False)

    def _remove_pod_netns(self) -> None:
        # Pod network namespaces containerd made and a killed sandbox left behind.
        if not Path("/run/netns").is_dir():
            return
        for name in set(os.listdir("/run/netns")) - self._netns_before:
            if name.startswith("cni-"):
                _run(["umount", "-l", f"/run/netns/{name}"], check=False)
                with contextlib.suppress(OSError):
                    os.remove(f"/run/netns/{name}")

    def _remove_cgroups(self) -> None:
        # The kubelet (cgroupfs driver) made kubepods under each hierarchy; empty ones go.
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            top = hierarchy / "kubepods"
            if not top.is_dir():
                continue
            for directory in sorted((p for p in top.rglob("*") if p.is_dir()), reverse=True):
                with contextlib.suppress(OSError):
                    directory.rmdir()
            with contextlib.suppress(OSError):
                top.rmdir()


__all__ += ["REPO_ROOT"]
