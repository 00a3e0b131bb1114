"""RBAC authorization is on: a ServiceAccount can do exactly what its roles allow."""

from __future__ import annotations

import uuid

import pytest

from tests.operator.cluster.envtest_cluster import EnvtestCluster, wait_for

pytestmark = pytest.mark.cluster


def test_service_account_is_bound_by_its_role(envtest_control_plane: EnvtestCluster) -> None:
    namespace = f"rbac-{uuid.uuid4().hex[:8]}"
    envtest_control_plane.create_namespace(namespace)
    assert (
        envtest_control_plane.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts",
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "operator"}},
        ).status
        == 201
    )
    kubeconfig = envtest_control_plane.service_account_kubeconfig(namespace, "operator")

    denied = envtest_control_plane.kubectl(
        "get", "configmaps", "-n", namespace, kubeconfig=kubeconfig, check=False
    )
    assert denied.returncode != 0
    assert (
        f'User "system:serviceaccount:{namespace}:operator" cannot list resource "configmaps"'
        in denied.stderr
    )

    envtest_control_plane.kubectl(
        "create",
        "role",
        "read-configmaps",
        "-n",
        namespace,
        "--verb=get,list",
        "--resource=configmaps",
    )
    envtest_control_plane.kubectl(
        "create",
        "rolebinding",
        "operator-reads",
        "-n",
        namespace,
        "--role=read-configmaps",
        f"--serviceaccount={namespace}:operator",
    )
    # The authorizer reads roles from an informer cache, so a new binding takes effect shortly.
    allowed = wait_for(
        lambda: envtest_control_plane.kubectl(
            "get", "configmaps", "-n", namespace, kubeconfig=kubeconfig, check=False
        ),
        lambda result: result.returncode == 0,
    )
    assert allowed.returncode == 0, allowed.stderr

    still_denied = envtest_control_plane.kubectl(
        "create", "configmap", "x", "-n", namespace, kubeconfig=kubeconfig, check=False
    )
    assert 'cannot create resource "configmaps"' in still_denied.stderr
