"""The generated CRDs on the real API server, and its verdicts agree with `bespoke validate`."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from bespoke_operator.api import ModelCustomization, ModelVersion
from bespoke_operator.api.version import SPEC_IMMUTABLE
from bespoke_operator.cli.validate import validate_text
from tests.operator.cluster.envtest_cluster import REPO_ROOT, EnvtestCluster
from tests.operator.unit.api.fixtures import FIXTURES, InvalidFixture, invalid_fixtures

pytestmark = pytest.mark.cluster

CRD_FILES = sorted((REPO_ROOT / "crds").glob("*.yaml"))
EXAMPLES = sorted((REPO_ROOT / "examples").glob("*.yaml"))
SERVER_FIXTURES = [f for f in invalid_fixtures() if f.server]
GROUP_PATH = "/apis/bespoke.dev/v1alpha1"


@pytest.fixture
def namespace(envtest: EnvtestCluster) -> str:
    name = f"crd-{uuid.uuid4().hex[:8]}"
    envtest.create_namespace(name)
    return name


def test_the_checkout_has_crds_and_examples() -> None:
    assert len(CRD_FILES) >= 2
    assert EXAMPLES


@pytest.mark.parametrize("path", CRD_FILES, ids=lambda p: p.name)
def test_crd_is_established_and_structural(envtest: EnvtestCluster, path: Path) -> None:
    name = yaml.safe_load(path.read_text())["metadata"]["name"]
    crd = envtest.request("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
    assert crd.status == 200, crd.message
    conditions = {c["type"]: c["status"] for c in crd.body["status"]["conditions"]}
    assert conditions["Established"] == "True"
    assert conditions["NamesAccepted"] == "True"
    assert conditions.get("NonStructuralSchema", "False") == "False"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_applies_server_side_and_validates(
    envtest: EnvtestCluster, namespace: str, path: Path
) -> None:
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
    _, problems = validate_text(path.read_text(), str(path))
    assert problems == []


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_server_defaults_equal_model_defaults(
    envtest: EnvtestCluster, namespace: str, path: Path
) -> None:
    for document in yaml.safe_load_all(path.read_text()):
        if not document or document.get("kind") != "ModelCustomization":
            continue
        name = document["metadata"]["name"]
        created = envtest.request(
            "POST", f"{GROUP_PATH}/namespaces/{namespace}/modelcustomizations", document
        )
        assert created.status == 201, created.message
        model = ModelCustomization.model_validate(document)
        assert created.body["spec"] == model.spec.model_dump(by_alias=True, exclude_none=True)
        assert created.body["metadata"]["name"] == name


@pytest.mark.parametrize("fixture", SERVER_FIXTURES, ids=lambda f: f.path.stem)
def test_invalid_resource_is_rejected_by_server_and_validate_alike(
    envtest: EnvtestCluster, namespace: str, fixture: InvalidFixture
) -> None:
    result = envtest.kubectl(
        "apply",
        "--server-side",
        "--dry-run=server",
        "-n",
        namespace,
        "-f",
        str(fixture.path),
        check=False,
    )
    assert result.returncode != 0, f"{fixture.path.name} was accepted by the API server"
    assert fixture.expect in result.stderr
    assert fixture.field in result.stderr

    _, problems = validate_text(fixture.path.read_text(), str(fixture.path))
    assert any(fixture.expect in str(p) and p.path == fixture.field for p in problems), problems


def test_task_change_is_rejected_as_a_transition(envtest: EnvtestCluster, namespace: str) -> None:
    updates = FIXTURES / "updates" / "task-change"
    before = envtest.kubectl(
        "apply",
        "--server-side",
        "-n",
        namespace,
        "-f",
        str(updates / "before.yaml"),
        check=False,
    )
    assert before.returncode == 0, before.stderr
    after_path = updates / "after.yaml"
    after = envtest.kubectl(
        "apply", "--server-side", "-n", namespace, "-f", str(after_path), check=False
    )
    expected = InvalidFixture.read(after_path)
    assert after.returncode != 0
    assert expected.expect in after.stderr
    assert expected.field in after.stderr


def _version_document(namespace: str) -> dict[str, Any]:
    """A ModelVersion as the operator writes it (`CreateVersion`), from the LoRA example."""
    example = yaml.safe_load((REPO_ROOT / "examples" / "text-classification-lora.yaml").read_text())
    spec = ModelCustomization.model_validate(example).spec
    version = ModelVersion.model_validate(
        {
            "apiVersion": "bespoke.dev/v1alpha1",
            "kind": "ModelVersion",
            "metadata": {"name": "sentiment-v1", "namespace": namespace},
            "spec": {
                "customization": "sentiment",
                "version": 1,
                "trainingHash": "abc123",
                "trigger": "Initial",
                "artifactUri": "pvc://bespoke-artifacts/sentiment/versions/v1",
                "snapshot": spec,
            },
        }
    )
    document: dict[str, Any] = version.model_dump(mode="json", by_alias=True, exclude_none=True)
    return document


@pytest.mark.parametrize(
    ("field", "value"),
    [("trainingHash", "tampered"), ("artifactUri", "s3://elsewhere/v1")],
)
def test_a_versions_spec_is_immutable_on_the_server(
    envtest: EnvtestCluster, namespace: str, field: str, value: str
) -> None:
    path = f"{GROUP_PATH}/namespaces/{namespace}/modelversions"
    created = envtest.request("POST", path, _version_document(namespace))
    assert created.status == 201, created.message
    changed = envtest.request(
        "PATCH",
        f"{path}/sentiment-v1",
        {"spec": {field: value}},
        content_type="application/merge-patch+json",
    )
    assert changed.status == 422, changed.message
    assert SPEC_IMMUTABLE["message"] in changed.message
    # The same spec written again is no change, and the status stays the operator's to write.
    same = envtest.request("PUT", f"{path}/sentiment-v1", created.body)
    assert same.status == 200, same.message
    status = envtest.request(
        "PATCH",
        f"{path}/sentiment-v1/status",
        {"status": {"phase": "Training"}},
        content_type="application/merge-patch+json",
    )
    assert status.status == 200, status.message


@pytest.mark.parametrize("plural", ["modelcustomizations", "modelversions"])
def test_the_server_reads_an_unreconciled_object_with_an_empty_status(
    envtest: EnvtestCluster, namespace: str, plural: str
) -> None:
    """A status, never none: Flux's CEL health expressions cannot test a name that is missing.

    The server fills in the status schema's defaults, `observedGeneration: 0` among them: kstatus
    and Flux read generation 1 observed 0 as InProgress until the operator writes its status.
    """
    if plural == "modelversions":
        document = _version_document(namespace)
    else:
        document = yaml.safe_load(
            (REPO_ROOT / "examples" / "text-classification-lora.yaml").read_text()
        )
    name = document["metadata"]["name"]
    created = envtest.request("POST", f"{GROUP_PATH}/namespaces/{namespace}/{plural}", document)
    assert created.status == 201, created.message
    read = envtest.request("GET", f"{GROUP_PATH}/namespaces/{namespace}/{plural}/{name}")
    listed = envtest.request("GET", f"{GROUP_PATH}/namespaces/{namespace}/{plural}")
    for status in (read.body["status"], *(item["status"] for item in listed.body["items"])):
        assert isinstance(status, dict)
        assert status["observedGeneration"] == 0


def _condition(type_: str, status: str, reason: str, message: str) -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2026-12-04T12:00:00Z",
    }


def _kubectl_get(envtest: EnvtestCluster, namespace: str, plural: str, name: str) -> dict[str, str]:
    """`kubectl get` as a person reads it: header column -> value (the Message is last)."""
    lines = envtest.kubectl("get", plural, name, "-n", namespace).stdout.splitlines()
    header, row = lines[0], lines[1]
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    names = header.split()
    cells = [row[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
    return dict(zip(names, cells, strict=True))


def test_kubectl_shows_ready_message_candidate_and_reason(
    envtest: EnvtestCluster, namespace: str
) -> None:
    lora = yaml.safe_load((REPO_ROOT / "examples" / "text-classification-lora.yaml").read_text())
    name = lora["metadata"]["name"]
    base = f"{GROUP_PATH}/namespaces/{namespace}"
    assert envtest.request("POST", f"{base}/modelcustomizations", lora).status == 201
    stalled = "training failed 3 times: OutOfMemory; lower training.batchSize"
    patched = envtest.request(
        "PATCH",
        f"{base}/modelcustomizations/{name}/status",
        {
            "status": {
                "observedGeneration": 1,
                "phase": "Failed",
                "productionVersion": 1,
                "candidateVersion": 2,
                "conditions": [
                    _condition("Ready", "False", "OutOfMemory", stalled),
                    _condition("Stalled", "True", "OutOfMemory", stalled),
                ],
            }
        },
        content_type="application/merge-patch+json",
    )
    assert patched.status == 200, patched.message
    shown = _kubectl_get(envtest, namespace, "modelcustomizations", name)
    assert shown["PRODUCTION"] == "1"
    assert shown["CANDIDATE"] == "2"
    assert shown["READY"] == "False"
    assert shown["MESSAGE"] == stalled

    assert (
        envtest.request("POST", f"{base}/modelversions", _version_document(namespace)).status == 201
    )
    patched = envtest.request(
        "PATCH",
        f"{base}/modelversions/sentiment-v1/status",
        {
            "status": {
                "phase": "Rejected",
                "reason": "GatesFailed",
                "conditions": [
                    _condition("Ready", "False", "Rejected", "macroF1 0.71 < 0.80"),
                ],
            }
        },
        content_type="application/merge-patch+json",
    )
    assert patched.status == 200, patched.message
    shown = _kubectl_get(envtest, namespace, "modelversions", "sentiment-v1")
    assert shown["READY"] == "False"
    assert shown["REASON"] == "GatesFailed"
    assert shown["MESSAGE"] == "macroF1 0.71 < 0.80"
