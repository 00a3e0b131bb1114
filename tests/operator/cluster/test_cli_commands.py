"""`bespoke get`, `bespoke versions --cluster` and `bespoke approve` against the real API server,
as a person whose only rights are the chart's aggregated view and edit roles."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from bespoke_operator.cli import app
from bespoke_operator.cli.run import ExitCode
from bespoke_operator.constants import APPROVAL_ANNOTATION
from bespoke_operator.reconcile import CreateVersion
from tests.chart.chartlib import CHART_DIR, by_kind, find_tool, run_helm
from tests.operator.cluster.envtest_cluster import EnvtestCluster, wait_for
from tests.operator.unit.reconcile.world import InMemoryWorld, actions_of, customization

pytestmark = pytest.mark.cluster

runner = CliRunner()
GROUP = "/apis/bespoke.dev/v1alpha1"


def _bespoke(*args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def _chart_roles(tmp_path: Path) -> list[dict[str, Any]]:
    """The chart's aggregated view and edit ClusterRoles, as helm renders them."""
    helm = find_tool("helm")
    if helm is None:
        pytest.skip("helm is not installed: hack/tools.sh helm")
    rendered = run_helm(helm, "template", "rel", str(CHART_DIR), tmp_dir=tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    manifests = [m for m in yaml.safe_load_all(rendered.stdout) if m]
    return [
        role
        for role in by_kind(manifests, "ClusterRole")
        if role["metadata"]["name"].endswith(("-view", "-edit"))
    ]


def _create(cluster: EnvtestCluster, path: str, body: dict[str, Any]) -> None:
    answer = cluster.request("POST", path, body)
    assert answer.status == 201, answer.message


def _version(number: int, namespace: str, status: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A ModelVersion as the operator creates it (the core's own CreateVersion), numbered."""
    world = InMemoryWorld(customization())
    [create] = actions_of(world.reconcile(), CreateVersion)
    body = create.version.model_dump(mode="json", by_alias=True, exclude_none=True)
    name = f"{create.version.metadata.name.rsplit('-v', 1)[0]}-v{number}"
    body["metadata"] = {**body["metadata"], "name": name, "namespace": namespace}
    body["spec"]["version"] = number
    body.pop("status", None)
    return body, name


@pytest.fixture
def person(envtest: EnvtestCluster, tmp_path: Path) -> tuple[str, Path]:
    """A namespace with a customization, v1 awaiting approval and v2 rejected, and the
    kubeconfig of a ServiceAccount bound to the chart's view and edit roles there."""
    cluster = envtest
    namespace = f"cli-{uuid.uuid4().hex[:8]}"
    cluster.create_namespace(namespace)
    document = customization()
    document["metadata"] = {"name": document["metadata"]["name"], "namespace": namespace}
    _create(cluster, f"{GROUP}/namespaces/{namespace}/modelcustomizations", document)
    for number, phase, reason in (
        (1, "AwaitingApproval", "AwaitingApproval"),
        (2, "Rejected", "GatesFailed"),
    ):
        body, name = _version(number, namespace, {})
        _create(cluster, f"{GROUP}/namespaces/{namespace}/modelversions", body)
        status = {"status": {"phase": phase, "reason": reason, "message": reason}}
        answer = cluster.request(
            "PATCH",
            f"{GROUP}/namespaces/{namespace}/modelversions/{name}/status",
            status,
            content_type="application/merge-patch+json",
        )
        assert answer.status == 200, answer.message

    for role in _chart_roles(tmp_path):
        role["metadata"]["name"] = f"{namespace}-{role['metadata']['name']}"
        _create(cluster, "/apis/rbac.authorization.k8s.io/v1/clusterroles", role)
        _create(
            cluster,
            f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": role["metadata"]["name"]},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": role["metadata"]["name"],
                },
                "subjects": [{"kind": "ServiceAccount", "name": "alice", "namespace": namespace}],
            },
        )
    _create(
        cluster,
        f"/api/v1/namespaces/{namespace}/serviceaccounts",
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "alice"}},
    )
    return document["metadata"]["name"], cluster.service_account_kubeconfig(namespace, "alice")


def test_get_and_versions_read_the_cluster(person: tuple[str, Path]) -> None:
    name, kubeconfig = person
    # The authorizer learns new bindings from an informer: wait until alice may read.
    got = wait_for(
        lambda: _bespoke("get", "--kubeconfig", kubeconfig, "-o", "json"),
        lambda result: result.exit_code == 0,
    )
    [item] = json.loads(got.stdout)["items"]
    assert (item["kind"], item["metadata"]["name"]) == ("ModelCustomization", name)

    table = _bespoke("get", name, "--kubeconfig", kubeconfig)
    assert table.exit_code == ExitCode.OK, table.output
    assert name in table.stdout

    listed = _bespoke("versions", name, "--cluster", "--kubeconfig", kubeconfig, "-o", "yaml")
    assert listed.exit_code == ExitCode.OK, listed.output
    phases = [
        (v["spec"]["version"], v["status"]["phase"]) for v in yaml.safe_load(listed.stdout)["items"]
    ]
    assert phases == [(1, "AwaitingApproval"), (2, "Rejected")]

    missing = _bespoke("get", "nothing", "--kubeconfig", kubeconfig)
    assert missing.exit_code == ExitCode.FAILED
    assert "No ModelCustomization nothing in namespace" in missing.stderr


def test_approve_annotates_with_the_edit_role_and_refuses_a_rejected_version(
    envtest: EnvtestCluster, person: tuple[str, Path]
) -> None:
    name, kubeconfig = person
    approved = wait_for(
        lambda: _bespoke("approve", name, "1", "--kubeconfig", kubeconfig),
        lambda result: result.exit_code == 0,
    )
    assert f"Approved {name}-v1: the operator promotes it now" in approved.stdout
    namespace = yaml.safe_load(kubeconfig.read_text())["contexts"][0]["context"]["namespace"]
    stored = envtest.request("GET", f"{GROUP}/namespaces/{namespace}/modelversions/{name}-v1")
    assert stored.body["metadata"]["annotations"][APPROVAL_ANNOTATION] == "true"

    refused = _bespoke("approve", name, "2", "--kubeconfig", kubeconfig)
    assert refused.exit_code == ExitCode.FAILED
    assert "v2 is Rejected (GatesFailed): an approval does not override its gates" in refused.stderr
    stored = envtest.request("GET", f"{GROUP}/namespaces/{namespace}/modelversions/{name}-v2")
    assert APPROVAL_ANNOTATION not in stored.body["metadata"].get("annotations", {})

    absent = _bespoke("approve", name, "9", "--kubeconfig", kubeconfig)
    assert absent.exit_code == ExitCode.FAILED
    assert f"{name} has no version 9 in namespace {namespace}" in absent.stderr


def test_the_edit_role_cannot_change_a_versions_status(
    envtest: EnvtestCluster, person: tuple[str, Path]
) -> None:
    # Approving is all the role allows on versions: their status stays the operator's.
    name, kubeconfig = person
    namespace = yaml.safe_load(kubeconfig.read_text())["contexts"][0]["context"]["namespace"]
    wait_for(
        lambda: _bespoke("get", "--kubeconfig", kubeconfig),
        lambda result: result.exit_code == 0,
    )
    denied = envtest.kubectl(
        "patch",
        "modelversion",
        f"{name}-v2",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status": {"phase": "Promoted"}}',
        kubeconfig=kubeconfig,
        check=False,
    )
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower()
