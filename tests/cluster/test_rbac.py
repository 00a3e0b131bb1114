"""RBAC authorization is on: a ServiceAccount can do exactly what its roles allow."""

from __future__ import annotations

import uuid

import pytest

from tests.cluster.envtest_cluster import EnvtestCluster, wait_for

pytestmark = pytest.mark.cluster


def test_service_account_is_bound_by_its_role(envtest: EnvtestCluster) -> None:
    namespace = f"rbac-{uuid.uuid4().hex[:8]}"
    envtest.create_namespace(namespace)
    assert (
        envtest.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts",
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "operator"}},
        ).status
        == 201
    )
    kubeconfig = envtest.service_account_kubeconfig(namespace, "operator")

    denied = envtest.kubectl(
        "get", "configmaps", "-n", namespace, kubeconfig=kubeconfig, check=False
    )
    assert denied.returncode != 0
    assert (
        f'User "system:serviceaccount:{namespace}:operator" cannot list resource "configmaps"'
        in denied.stderr
    )

    envtest.kubectl(
        "create",
        "role",
        "read-configmaps",
        "-n",
        namespace,
        "--verb=get,list",
        "--resource=configmaps",
    )
    envtest.kubectl(
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
        lambda: envtest.kubectl(
            "get", "configmaps", "-n", namespace, kubeconfig=kubeconfig, check=False
        ),
        lambda result: result.returncode == 0,
    )
    assert allowed.returncode == 0, allowed.stderr

    still_denied = envtest.kubectl(
        "create", "configmap", "x", "-n", namespace, kubeconfig=kubeconfig, check=False
    )
    assert 'cannot create resource "configmaps"' in still_denied.stderr
