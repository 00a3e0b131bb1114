"""The generated CRDs on the real API server: accepted, examples apply, invalid files rejected."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml
from envtest_cluster import REPO_ROOT, EnvtestCluster

pytestmark = pytest.mark.cluster

CRD_FILES = sorted((REPO_ROOT / "crds").glob("*.yaml"))
EXAMPLES = sorted((REPO_ROOT / "examples").glob("*.yaml"))
INVALID = sorted((REPO_ROOT / "tests" / "fixtures" / "invalid").glob("*.yaml"))


def _ids(paths: list[Path]) -> list[str]:
    return [path.name for path in paths]


def expected_error(path: Path) -> str:
    """The substring the server's error must contain, from the file's `# expect: ...` line."""
    first = path.read_text().splitlines()[0]
    prefix = "# expect:"
    assert first.startswith(prefix), f"{path.name} must start with `{prefix} <substring>`"
    return first[len(prefix) :].strip()


@pytest.fixture
def namespace(envtest: EnvtestCluster) -> str:
    name = f"crd-{uuid.uuid4().hex[:8]}"
    envtest.create_namespace(name)
    return name


@pytest.mark.parametrize("path", CRD_FILES, ids=_ids(CRD_FILES))
def test_crd_is_established_and_structural(envtest: EnvtestCluster, path: Path) -> None:
    name = yaml.safe_load(path.read_text())["metadata"]["name"]
    crd = envtest.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
    assert crd.status == 200, crd.message
    conditions = {c["type"]: c["status"] for c in crd.body["status"]["conditions"]}
    assert conditions["Established"] == "True"
    assert conditions["NamesAccepted"] == "True"
    assert conditions.get("NonStructuralSchema", "False") == "False"


@pytest.mark.parametrize("path", EXAMPLES, ids=_ids(EXAMPLES))
def test_example_applies_server_side(envtest: EnvtestCluster, namespace: str, path: Path) -> None:
    result = envtest.kubectl(
        "apply",
        "--server-side",
        "--field-manager=bespoke-envtest",
        "-n",
        namespace,
        "-f",
        str(path),
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("path", INVALID, ids=_ids(INVALID))
def test_invalid_resource_is_rejected_naming_the_field(
    envtest: EnvtestCluster, namespace: str, path: Path
) -> None:
    expected = expected_error(path)
    result = envtest.kubectl(
        "apply",
        "--server-side",
        "--dry-run=server",
        "-n",
        namespace,
        "-f",
        str(path),
        check=False,
    )
    assert result.returncode != 0, f"{path.name} was accepted by the API server"
    assert expected in result.stderr
