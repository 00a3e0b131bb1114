"""A real etcd + kube-apiserver (+ kube-controller-manager) on local ports, for the cluster tests.

The binaries come from ``hack/envtest.sh`` (cache, official release, or a build from the Kubernetes
Go modules). :class:`EnvtestCluster` generates certificates and service-account keys, starts the
processes in their own process groups, waits for ``/readyz`` and tears everything down again.
Every child also gets ``PR_SET_PDEATHSIG`` so that even a killed test runner leaves none behind.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import datetime
import ipaddress
import json
import logging
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, TypeVar

import httpx
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "K8S_VERSION",
    "REPO_ROOT",
    "ApiResponse",
    "BinariesMissingError",
    "EnvtestCluster",
    "EnvtestError",
    "binary_dir",
    "die_with_parent",
    "find_binaries",
    "require_binaries",
    "running_cluster",
    "terminate_group",
    "wait_for",
]

log = logging.getLogger(__name__)

# Must match hack/envtest.sh and hack/envtest/go.mod.
K8S_VERSION = os.environ.get("BESPOKE_ENVTEST_K8S_VERSION", "1.34.4")
REPO_ROOT = Path(__file__).resolve().parents[3]
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0
_PR_SET_PDEATHSIG = 1
_T = TypeVar("_T")


class EnvtestError(RuntimeError):
    """A control-plane process failed to start or to become ready."""


class BinariesMissingError(EnvtestError):
    """The binaries are not in the cache and were not built (run ``hack/envtest.sh``)."""


def binary_dir() -> Path:
    """Where ``hack/envtest.sh`` puts the binaries (``BESPOKE_ENVTEST_BIN_DIR`` overrides it)."""
    override = os.environ.get("BESPOKE_ENVTEST_BIN_DIR")
    if override:
        return Path(override)
    cache_root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_root) / "bespoke" / "envtest" / K8S_VERSION


def find_binaries(*, controller_manager: bool) -> dict[str, Path]:
    """Return the paths of the needed binaries, or raise :class:`BinariesMissingError`."""
    directory = binary_dir()
    names = ["etcd", "kube-apiserver"] + (["kube-controller-manager"] if controller_manager else [])
    paths = {name: directory / name for name in names}
    missing = [name for name, path in paths.items() if not os.access(path, os.X_OK)]
    if missing:
        raise BinariesMissingError(
            f"{', '.join(missing)} not found in {directory}: run `hack/envtest.sh` "
            f"(or `make test-cluster`) to fetch or build Kubernetes {K8S_VERSION}"
        )
    return paths


def require_binaries(*, controller_manager: bool) -> dict[str, Path]:
    """:func:`find_binaries`, or skip the test saying how to get them.

    With ``BESPOKE_ENVTEST_REQUIRED=1`` (``make test-cluster``, CI) missing binaries fail the test
    instead, so a broken build cannot pass as a row of skips.
    """
    try:
        return find_binaries(controller_manager=controller_manager)
    except BinariesMissingError as missing:
        if os.environ.get("BESPOKE_ENVTEST_REQUIRED") == "1":
            pytest.fail(f"BESPOKE_ENVTEST_REQUIRED=1 but {missing}", pytrace=False)
        pytest.skip(str(missing))


def _free_port() -> int:
    # The port is released before the server binds it; on a loopback-only test machine the
    # window for another process to take it is small enough.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def die_with_parent() -> None:
    # Runs in the child between fork and exec: the kernel kills it when the test runner dies,
    # which covers the one case finalizers and atexit cannot (SIGKILL of pytest).
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass(frozen=True)
class ApiResponse:
    """One raw answer of the API server: status code and decoded JSON body."""

    status: int
    body: dict[str, Any]

    @property
    def message(self) -> str:
        """The ``Status`` message of an error answer (empty for a success)."""
        return str(self.body.get("message", ""))


@dataclass
class _Pki:
    """Files of the throwaway certificate authority, serving and client certificates."""

    ca_cert: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _issue(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer if issuer else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
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
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else (ExtendedKeyUsageOID.CLIENT_AUTH)
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.DNSName("kubernetes.default.svc"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _make_pki(directory: Path) -> _Pki:
    """Generate a CA, the API server's serving pair, an admin client pair and the SA keys."""
    directory.mkdir(parents=True, exist_ok=True)
    # P-256 keys: generating RSA keys costs far more of the warm-start budget.
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bespoke-envtest-ca")])
    ca_cert = _issue(ca_name, ca_key, None, ca=True)
    serving_key = ec.generate_private_key(ec.SECP256R1())
    serving_cert = _issue(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
        serving_key,
        (ca_name, ca_key),
        server=True,
    )
    admin_key = ec.generate_private_key(ec.SECP256R1())
    admin_cert = _issue(
        x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                x509.NameAttribute(NameOID.COMMON_NAME, "bespoke-envtest-admin"),
            ]
        ),
        admin_key,
        (ca_name, ca_key),
    )
    sa_key = ec.generate_private_key(ec.SECP256R1())
    pki = _Pki(
        ca_cert=directory / "ca.crt",
        serving_cert=directory / "apiserver.crt",
        serving_key=directory / "apiserver.key",
        admin_cert=directory / "admin.crt",
        admin_key=directory / "admin.key",
        sa_key=directory / "sa.key",
        sa_pub=directory / "sa.pub",
    )
    pem = serialization.Encoding.PEM
    pki.ca_cert.write_bytes(ca_cert.public_bytes(pem))
    pki.serving_cert.write_bytes(serving_cert.public_bytes(pem))
    pki.admin_cert.write_bytes(admin_cert.public_bytes(pem))
    _write_key(pki.serving_key, serving_key)
    _write_key(pki.admin_key, admin_key)
    _write_key(pki.sa_key, sa_key)
    pki.sa_pub.write_bytes(
        sa_key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return pki


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


@dataclass
class EnvtestCluster:
    """A throwaway control plane: etcd, kube-apiserver and optionally kube-controller-manager.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`. ``stop`` is safe to call
    more than once and is also registered with :mod:`atexit`.
    """

    controller_manager: bool = False
    extra_apiserver_args: Sequence[str] = ()
    work_dir: Path | None = None
    binaries: Mapping[str, Path] = field(default_factory=dict)
    server: str = ""
    kubeconfig: Path = Path()
    startup_seconds: float = 0.0
    _processes: list[_Process] = field(default_factory=list)
    _owns_work_dir: bool = False
    _pki: _Pki | None = None
    _client: httpx.Client | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the processes and return once the API server answers ``/readyz``."""
        began = time.monotonic()
        if not self.binaries:
            self.binaries = find_binaries(controller_manager=self.controller_manager)
        if self.work_dir is None:
            self.work_dir = Path(tempfile.mkdtemp(prefix="bespoke-envtest-"))
            self._owns_work_dir = True
        atexit.register(self.stop)
        try:
            self._pki = _make_pki(self.work_dir / "pki")
            etcd_url = self._start_etcd()
            self._start_apiserver(etcd_url)
            self._write_kubeconfig()
            self._wait_ready()
            if self.controller_manager:
                self.start_controller_manager()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        log.info("Envtest control plane ready at %s in %.1fs", self.server, self.startup_seconds)

    def stop(self) -> None:
        """Stop every process (process group SIGTERM, then SIGKILL) and remove the data dir.

        ``BESPOKE_ENVTEST_KEEP=1`` keeps the data dir with each process's log for a post-mortem.
        """
        if self._client is not None:
            self._client.close()
            self._client = None
        # Reverse order: clients of etcd go first so they do not log connection errors.
        for proc in reversed(self._processes):
            terminate_group(proc.popen)
        self._processes.clear()
        if self._owns_work_dir and self.work_dir is not None:
            if os.environ.get("BESPOKE_ENVTEST_KEEP") == "1":
                log.warning("Keeping the envtest logs and data in %s", self.work_dir)
            else:
                shutil.rmtree(self.work_dir, ignore_errors=True)
            self.work_dir = None
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)

    @property
    def pids(self) -> list[int]:
        """Process ids of the running control-plane processes."""
        return [proc.popen.pid for proc in self._processes if proc.popen.poll() is None]

    def _spawn(self, name: str, args: Sequence[str]) -> _Process:
        assert self.work_dir is not None
        log_path = self.work_dir / f"{name}.log"
        with log_path.open("wb") as log_file:
            popen = subprocess.Popen(
                [str(self.binaries[name]), *args],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # Only a prctl call runs before exec, which is safe even with threads running.
                preexec_fn=die_with_parent,  # noqa: PLW1509
                cwd=self.work_dir,
            )
        proc = _Process(name, popen, log_path)
        self._processes.append(proc)
        return proc

    def _start_etcd(self) -> str:
        assert self.work_dir is not None
        client_url = f"http://127.0.0.1:{_free_port()}"
        peer_url = f"http://127.0.0.1:{_free_port()}"
        proc = self._spawn(
            "etcd",
            [
                f"--data-dir={self.work_dir / 'etcd'}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--log-level=warn",
                # A throwaway store: durability buys nothing and fsync costs seconds per test.
                "--unsafe-no-fsync",
            ],
        )
        self._wait_http(proc, f"{client_url}/health", verify=False)
        return client_url

    def _start_apiserver(self, etcd_url: str) -> None:
        assert self.work_dir is not None
        assert self._pki is not None
        pki = self._pki
        port = _free_port()
        self.server = f"https://127.0.0.1:{port}"
        self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={self.work_dir / 'apiserver-certs'}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca_cert}",
                f"--service-account-key-file={pki.sa_pub}",
                f"--service-account-signing-key-file={pki.sa_key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--authorization-mode=RBAC",
                "--allow-privileged=true",
                "--endpoint-reconciler-type=none",
                "--v=1",
                *self.extra_apiserver_args,
            ],
        )

    def start_controller_manager(self) -> None:
        """Start kube-controller-manager (Jobs get Pods, owner references garbage-collect).

        Idempotent, so a test that needs it can ask for it on a cluster started without it.
        """
        assert self.work_dir is not None
        assert self._pki is not None
        if any(p.name == "kube-controller-manager" for p in self._processes):
            return
        if "kube-controller-manager" not in self.binaries:
            self.binaries = {**self.binaries, **find_binaries(controller_manager=True)}
        self.controller_manager = True
        self._spawn(
            "kube-controller-manager",
            [
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={_free_port()}",
                f"--cert-dir={self.work_dir / 'kcm-certs'}",
                "--leader-elect=false",
                f"--service-account-private-key-file={self._pki.sa_key}",
                f"--root-ca-file={self._pki.ca_cert}",
                "--use-service-account-credentials=false",
                "--v=1",
            ],
        )

    def _write_kubeconfig(self) -> None:
        assert self.work_dir is not None
        assert self._pki is not None
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "envtest",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority": str(self._pki.ca_cert),
                    },
                }
            ],
            "users": [
                {
                    "name": "envtest-admin",
                    "user": {
                        "client-certificate": str(self._pki.admin_cert),
                        "client-key": str(self._pki.admin_key),
                    },
                }
            ],
            "contexts": [
                {
                    "name": "envtest",
                    "context": {
                        "cluster": "envtest",
                        "user": "envtest-admin",
                        "namespace": "default",
                    },
                }
            ],
            "current-context": "envtest",
        }
        self.kubeconfig = self.work_dir / "kubeconfig"
        self.kubeconfig.write_text(yaml.safe_dump(config))

    def _ssl_context(self) -> ssl.SSLContext:
        assert self._pki is not None
        context = ssl.create_default_context(cafile=str(self._pki.ca_cert))
        context.load_cert_chain(str(self._pki.admin_cert), str(self._pki.admin_key))
        return context

    def _wait_http(self, proc: _Process, url: str, *, verify: ssl.SSLContext | bool) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        last = "no answer yet"
        with httpx.Client(verify=verify, timeout=5.0) as client:
            while time.monotonic() < deadline:
                if proc.popen.poll() is not None:
                    raise EnvtestError(
                        f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}"
                    )
                try:
                    response = client.get(url)
                    if response.status_code == 200:
                        return
                    last = f"{response.status_code}: {response.text[-500:]}"
                except httpx.HTTPError as error:
                    last = repr(error)
                time.sleep(0.1)
        raise EnvtestError(f"{proc.name} not ready at {url} ({last}):\n{proc.tail()}")

    def _wait_ready(self) -> None:
        apiserver = next(p for p in self._processes if p.name == "kube-apiserver")
        self._wait_http(apiserver, f"{self.server}/readyz", verify=self._ssl_context())
        # /readyz can pass before the bootstrap controller has created the default namespace.
        deadline = time.monotonic() + READY_TIMEOUT_S
        while self.request("GET", "/api/v1/namespaces/default").status != 200:
            if time.monotonic() > deadline:
                raise EnvtestError("The default namespace was never created")
            time.sleep(0.1)

    # -- clients ---------------------------------------------------------------------------

    @property
    def client(self) -> httpx.Client:
        """An httpx client authenticated as cluster admin (``system:masters``)."""
        if self._client is None:
            self._client = httpx.Client(
                base_url=self.server, verify=self._ssl_context(), timeout=30.0
            )
        return self._client

    def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ApiResponse:
        """Send one raw request and return the status code and JSON body, errors included."""
        all_headers = {"Content-Type": content_type, **(headers or {})}
        response = self.client.request(
            method,
            path,
            content=None if body is None else json.dumps(body),
            headers=all_headers,
            params=params,
        )
        try:
            decoded = response.json()
        except ValueError:
            decoded = {"message": response.text}
        return ApiResponse(response.status_code, decoded if isinstance(decoded, dict) else {})

    def kubectl(
        self,
        *args: str,
        check: bool = True,
        input_text: str | None = None,
        kubeconfig: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``kubectl`` against this cluster (the envtest cache's, else the one on PATH).

        ``kubeconfig`` selects another identity, e.g. one from :meth:`service_account_kubeconfig`.
        """
        executable = binary_dir() / "kubectl"
        program = str(executable) if os.access(executable, os.X_OK) else shutil.which("kubectl")
        if program is None:
            raise BinariesMissingError("kubectl is neither in the envtest cache nor on PATH")
        result = subprocess.run(
            [program, f"--kubeconfig={kubeconfig or self.kubeconfig}", *args],
            input=input_text,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise EnvtestError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def env(self) -> dict[str, str]:
        """Environment for a subprocess (or a kopf runner) that should talk to this cluster."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def apply_crds(self, paths: Sequence[Path], *, timeout_s: int = 60) -> list[str]:
        """Apply CRD files server-side and wait until each is Established; return their names."""
        names: list[str] = []
        for path in paths:
            for document in yaml.safe_load_all(path.read_text()):
                if document and document.get("kind") == "CustomResourceDefinition":
                    names.append(document["metadata"]["name"])
        if not names:
            return names
        files = [arg for path in paths for arg in ("-f", str(path))]
        self.kubectl("apply", "--server-side", "--field-manager=bespoke-envtest", *files)
        self.kubectl(
            "wait",
            "--for=condition=Established",
            f"--timeout={timeout_s}s",
            *[f"crd/{name}" for name in names],
        )
        return names

    def service_account_kubeconfig(
        self, namespace: str, name: str, *, expiration_seconds: int = 3600
    ) -> Path:
        """Write a kubeconfig that authenticates as a ServiceAccount through a bound token.

        This is how a test runs the operator with exactly the RBAC of the chart's ServiceAccount:
        the API server authenticates the token and authorizes every request against its roles.
        """
        assert self.work_dir is not None
        assert self._pki is not None
        answer = self.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": expiration_seconds},
            },
        )
        if answer.status != 201:
            raise EnvtestError(f"TokenRequest for {namespace}/{name} failed: {answer.message}")
        token = answer.body["status"]["token"]
        path = self.work_dir / f"kubeconfig-sa-{namespace}-{name}"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "envtest",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority": str(self._pki.ca_cert),
                    },
                }
            ],
            "users": [{"name": f"{namespace}-{name}", "user": {"token": token}}],
            "contexts": [
                {
                    "name": "envtest",
                    "context": {
                        "cluster": "envtest",
                        "user": f"{namespace}-{name}",
                        "namespace": namespace,
                    },
                }
            ],
            "current-context": "envtest",
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def create_namespace(self, name: str) -> None:
        """Create a namespace (an existing one is fine) with its ``default`` ServiceAccount.

        The controller-manager makes the ServiceAccount on a real cluster; without it, Pods would
        be refused by the ServiceAccount admission plugin.
        """
        for path, body in (
            ("/api/v1/namespaces", {"metadata": {"name": name}}),
            (f"/api/v1/namespaces/{name}/serviceaccounts", {"metadata": {"name": "default"}}),
        ):
            answer = self.request("POST", path, {"apiVersion": "v1", **body})
            if answer.status not in (201, 409):
                raise EnvtestError(f"Creating {path} failed: {answer.status} {answer.message}")


def terminate_group(popen: subprocess.Popen[bytes], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Stop a child and everything it started: SIGTERM to its group, SIGKILL if it lingers."""
    if popen.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(popen.pid, signal.SIGTERM)
    try:
        popen.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGKILL)
        popen.wait(timeout=timeout_s)


@contextlib.contextmanager
def running_cluster(*, controller_manager: bool = False) -> Iterator[EnvtestCluster]:
    """Start a cluster for the length of a ``with`` block."""
    cluster = EnvtestCluster(controller_manager=controller_manager)
    with cluster:
        yield cluster


def wait_for(probe: Callable[[], _T], done: Callable[[_T], bool], *, timeout_s: float = 60.0) -> _T:
    """Call ``probe`` until ``done`` accepts its result or the timeout passes; return the last.

    Controllers converge eventually; the caller asserts on the returned state, never on time.
    """
    deadline = time.monotonic() + timeout_s
    result = probe()
    while not done(result) and time.monotonic() < deadline:
        time.sleep(0.2)
        result = probe()
    return result
