"""The whole loop in real pods: a customization trains, passes its gates and serves.

The chart's operator pod (from its own image) runs the real trainer Job and serving Deployment
on the kubelet; the data and the base model (all-MiniLM-L6-v2) sit on a hostPath
PersistentVolume, versions go to another. A request through the serving Service (kube-proxy)
must classify. Namespaces enforce Pod Security `restricted`.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.node.node_cluster import NodeCluster, wait_until
from tests.node.test_operator_pod import helm_install, leader, namespace, operator_pods, snapshot
from tests.operator.cluster.envtest_cluster import REPO_ROOT

pytestmark = [pytest.mark.node, pytest.mark.slow]

log = logging.getLogger(__name__)

TEAM = "team-loop"
EXAMPLE = REPO_ROOT / "examples" / "text-classification-lora.yaml"
DATA = REPO_ROOT / "examples" / "data" / "sentiment" / "train.jsonl"
MODEL_REPO = "models--sentence-transformers--all-MiniLM-L6-v2"


def _model_snapshot() -> Path:
    """The all-MiniLM-L6-v2 files `make model-cache` put in the Hugging Face cache."""
    import os

    home = os.environ.get("HF_HOME") or str(Path.home() / ".cache" / "huggingface")
    hub = Path(os.environ.get("HF_HUB_CACHE", Path(home) / "hub"))
    snapshots = sorted((hub / MODEL_REPO / "snapshots").glob("*"))
    if not snapshots:
        pytest.fail(f"all-MiniLM-L6-v2 is not in {hub}: run `make model-cache`", pytrace=False)
    return snapshots[-1]


def volumes(node: NodeCluster, team: str, files: dict[str, Path]) -> None:
    """hostPath PersistentVolumes bound to claims in ``team``: ``bespoke-data`` holds ``files``
    (path in the claim -> source) and the model under models/all-MiniLM-L6-v2;
    ``bespoke-artifacts`` is written by the trainer as uid 1000, so it is open to it."""
    data = node.work_dir / "pv" / team / "data"
    shutil.copytree(_model_snapshot(), data / "models" / "all-MiniLM-L6-v2", symlinks=False)
    for inside, source in files.items():
        (data / inside).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, data / inside)
    artifacts = node.work_dir / "pv" / team / "artifacts"
    artifacts.mkdir(parents=True)
    artifacts.chmod(0o777)
    documents: list[dict[str, Any]] = []
    for claim, path in (("bespoke-data", data), ("bespoke-artifacts", artifacts)):
        documents.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": f"{team}-{claim}"},
                "spec": {
                    "capacity": {"storage": "5Gi"},
                    "accessModes": ["ReadWriteOnce", "ReadOnlyMany"],
                    "storageClassName": "",
                    "hostPath": {"path": str(path), "type": "Directory"},
                    "claimRef": {"namespace": team, "name": claim},
                },
            }
        )
        documents.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": claim, "namespace": team},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": "",
                    "volumeName": f"{team}-{claim}",
                    "resources": {"requests": {"storage": "5Gi"}},
                },
            }
        )
    node.kubectl(
        "apply",
        "-f",
        "-",
        input_text=json.dumps({"apiVersion": "v1", "kind": "List", "items": documents}),
    )
    phases = wait_until(
        lambda: [c["status"].get("phase") for c in node.get_json("pvc", "-n", team)["items"]],
        lambda found: found == ["Bound", "Bound"],
        timeout_s=120,
    )
    assert phases == ["Bound", "Bound"], phases


def _customization() -> dict[str, Any]:
    customization = yaml.safe_load(EXAMPLE.read_text())
    customization["metadata"]["namespace"] = TEAM
    spec = customization["spec"]
    spec["baseModel"] = {"uri": "pvc://bespoke-data/models/all-MiniLM-L6-v2"}
    spec["training"]["resources"] = {"cpu": "1", "memory": "3Gi"}
    spec["serving"]["resources"] = {"cpu": "500m", "memory": "2Gi"}
    return customization


def running_pods(node: NodeCluster, namespace_name: str, selector: str) -> list[Any]:
    pods = node.get_json("pods", "-n", namespace_name, "-l", selector)["items"]
    return [
        p
        for p in pods
        if p["status"].get("phase") == "Running"
        and all(c.get("state", {}).get("running") for c in p["status"].get("containerStatuses", []))
    ]


def classify(node: NodeCluster, texts: list[str], team: str = TEAM) -> Any:
    """POST /classify through the serving Service's cluster IP (kube-proxy), from the node."""
    service = node.get_json("service", "-n", team, "-l", "app.kubernetes.io/component=serving")
    (svc,) = service["items"]
    url = f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}/classify"
    answer = node.run_in_node(
        [
            "curl",
            "-sS",
            "--fail-with-body",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data",
            json.dumps({"texts": texts}),
            url,
        ],
        check=False,
        timeout=120,
    )
    assert answer.returncode == 0, answer.stdout + answer.stderr
    return json.loads(answer.stdout)


def test_a_customization_trains_passes_its_gates_and_serves_in_real_pods(
    node: NodeCluster, operator_image: str, loop_images: dict[str, str], helm: str
) -> None:
    for name in ("bespoke-loop", TEAM):
        namespace(node, name)
    installed = helm_install(
        node, helm, release="loop", namespace_name="bespoke-loop", watched=TEAM
    )
    assert installed.returncode == 0, installed.stderr
    volumes(node, TEAM, {"sentiment/train.jsonl": DATA})
    customization = _customization()
    name = customization["metadata"]["name"]
    node.kubectl("apply", "-f", "-", input_text=json.dumps(customization))
    snapshot(node, "customization applied")

    def phase() -> str | None:
        status = node.get_json("mc", name, "-n", TEAM).get("status", {})
        return status.get("phase")

    training = wait_until(phase, lambda p: p not in (None, "Pending"), timeout_s=180, interval=2)
    snapshot(node, f"phase {training}")

    # The operator dies (kill -9 of its container) while the trainer runs; its restart must
    # adopt the running Job, not start another version or attempt.
    trainer = wait_until(
        lambda: running_pods(node, TEAM, "app.kubernetes.io/component=trainer"),
        bool,
        timeout_s=300,
        interval=2,
    )
    assert trainer, node.kubectl("describe", "pods", "-n", TEAM, check=False).stdout[-3000:]
    # The leader (the Lease holder) dies; a standby takes over or the leader comes back.
    holder = leader(node, "bespoke-loop", "loop")
    (operator,) = [
        p for p in operator_pods(node, "bespoke-loop") if p["metadata"]["name"] == holder
    ]
    node.kill_container(operator["status"]["containerStatuses"][0]["containerID"])

    def killed() -> list[Any]:
        pods = operator_pods(node, "bespoke-loop")
        return [p for p in pods if p["metadata"]["name"] == holder]

    restarted = wait_until(
        killed,
        lambda pods: (
            bool(pods)
            and pods[0]["status"]["containerStatuses"][0]["restartCount"] > 0
            and pods[0]["status"]["containerStatuses"][0]["ready"]
        ),
        timeout_s=300,
        interval=2,
    )
    snapshot(node, "operator container killed and restarted while the trainer runs")
    assert restarted
    assert restarted[0]["status"]["containerStatuses"][0]["restartCount"] == 1
    ready = wait_until(
        phase,
        lambda p: p in ("Ready", "Failed", "Degraded", "AwaitingApproval"),
        timeout_s=1500,
        interval=5,
    )
    snapshot(node, f"phase {ready}")
    if ready != "Ready":
        for selector in (
            "app.kubernetes.io/component=trainer",
            "app.kubernetes.io/component=serving",
        ):
            logs = node.kubectl("logs", "-n", TEAM, "-l", selector, "--tail=60", check=False)
            log.info("logs of %s:\n%s%s", selector, logs.stdout, logs.stderr)
        log.info(
            "%s", node.kubectl("describe", "mc,mv,pods", "-n", TEAM, check=False).stdout[-6000:]
        )
    assert ready == "Ready"
    version = node.get_json("mv", f"{name}-v1", "-n", TEAM)
    log.info("v1 status: %s", json.dumps(version.get("status"), indent=1))

    # No duplicate: one version, one trainer Job (attempt 1), after the operator's restart.
    versions = [v["metadata"]["name"] for v in node.get_json("mv", "-n", TEAM)["items"]]
    jobs = [j["metadata"]["name"] for j in node.get_json("jobs", "-n", TEAM)["items"]]
    assert versions == [f"{name}-v1"]
    assert jobs == [f"{name}-v1-train-1"]

    rows = [json.loads(line) for line in DATA.read_text().splitlines()[:6]]
    answer = classify(node, [row["text"] for row in rows])
    log.info("classified through the Service: %s", answer)
    assert [item["label"] for item in answer] == [row["label"] for row in rows]
