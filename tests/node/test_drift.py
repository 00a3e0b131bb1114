"""Drift in real pods: the support-tickets customization serves v1, drifted traffic through its
Service gives a drift reading that the operator pod reads from the serving pod by its cluster DNS
name, v2 trains on the labelled recent data warm-started from v1 and is gated against it, and
`serving.pinnedVersion` moves production to the other version (for a promoted v2, a rollback).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import yaml

from tests.node.node_cluster import NodeCluster, wait_until
from tests.node.test_loop import classify, volumes
from tests.node.test_operator_pod import helm_install, namespace, snapshot
from tests.operator.cluster.envtest_cluster import REPO_ROOT

pytestmark = [pytest.mark.node, pytest.mark.slow]

log = logging.getLogger(__name__)

TEAM, SYSTEM = "team-drift", "bespoke-drift"
EXAMPLE = REPO_ROOT / "examples" / "support-tickets"


def _customization() -> dict[str, Any]:
    customization = yaml.safe_load((EXAMPLE / "customization.yaml").read_text())
    customization["metadata"]["namespace"] = TEAM
    spec = customization["spec"]
    spec["baseModel"] = {"uri": "pvc://bespoke-data/models/all-MiniLM-L6-v2"}
    spec["dataset"]["train"]["uri"] = "pvc://bespoke-data/support-tickets/train.jsonl"
    spec["monitoring"]["onDrift"]["dataset"]["uri"] = (
        "pvc://bespoke-data/support-tickets/recent-labelled.jsonl"
    )
    spec["storage"] = {"uri": "pvc://bespoke-artifacts/support-tickets"}
    spec["training"]["resources"] = {"cpu": "1", "memory": "3Gi"}
    spec["serving"]["resources"] = {"cpu": "500m", "memory": "2Gi"}
    return customization


def test_drift_retrains_and_a_pin_rolls_back_in_real_pods(
    node: NodeCluster, operator_image: str, loop_images: dict[str, str], helm: str
) -> None:
    for name in (SYSTEM, TEAM):
        namespace(node, name)
    installed = helm_install(node, helm, release="drift", namespace_name=SYSTEM, watched=TEAM)
    assert installed.returncode == 0, installed.stderr
    volumes(
        node,
        TEAM,
        {
            "support-tickets/train.jsonl": EXAMPLE / "data" / "train.jsonl",
            "support-tickets/recent-labelled.jsonl": EXAMPLE / "data" / "recent-labelled.jsonl",
        },
    )
    customization = _customization()
    name = customization["metadata"]["name"]
    node.kubectl("apply", "-f", "-", input_text=json.dumps(customization))

    def status() -> dict[str, Any]:
        found: dict[str, Any] = node.get_json("mc", name, "-n", TEAM).get("status", {})
        return found

    first = wait_until(
        status, lambda s: s.get("productionVersion") == 1, timeout_s=1500, interval=5
    )
    snapshot(node, "v1 in production")
    assert first.get("productionVersion") == 1, first

    # Drifted traffic through the Service, in requests the serving limits allow.
    rows = (EXAMPLE / "traffic" / "drifted.jsonl").read_text().splitlines()
    texts = [json.loads(line)["text"] for line in rows]
    batch = customization["spec"]["serving"]["limits"]["maxTextsPerRequest"]
    for start in range(0, len(texts), batch):
        classify(node, texts[start : start + batch], team=TEAM)
    drifted = wait_until(status, lambda s: bool(s.get("drift")), timeout_s=300, interval=5)
    snapshot(node, "drift read by the operator")
    assert drifted.get("drift"), drifted
    log.info("drift reading: %s", drifted["drift"])

    def version_two() -> dict[str, Any]:
        versions = node.get_json("mv", "-n", TEAM)["items"]
        return next((v for v in versions if v["spec"]["version"] == 2), {})

    v2 = wait_until(
        version_two,
        lambda v: v.get("status", {}).get("phase") in ("Promoted", "Rejected", "Failed"),
        timeout_s=1500,
        interval=5,
    )
    snapshot(node, "v2 gated")
    assert v2["spec"]["trigger"] == "Drift"
    assert v2["spec"].get("parentVersion") == 1
    assert v2["status"]["phase"] in ("Promoted", "Rejected"), v2["status"]

    # v2 promoted rolls out; v2 rejected leaves v1. Either way a pin to the other version must
    # move production and what the Service answers with (for a promoted v2, a rollback).
    gated = wait_until(
        lambda: (status().get("productionVersion"), status().get("phase")),
        lambda s: s[1] == "Ready",
        timeout_s=600,
        interval=5,
    )
    snapshot(node, f"production v{gated[0]} after v2's gates")
    expected = 2 if v2["status"]["phase"] == "Promoted" else 1
    assert gated == (expected, "Ready")
    target = 3 - expected
    node.kubectl(
        "patch",
        "mc",
        name,
        "-n",
        TEAM,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"serving": {"pinnedVersion": target}}}),
    )
    pinned = wait_until(
        lambda: (status().get("productionVersion"), status().get("phase")),
        lambda s: s == (target, "Ready"),
        timeout_s=600,
        interval=5,
    )
    served = wait_until(
        lambda: {item["version"] for item in classify(node, texts[:4], team=TEAM)},
        lambda versions: versions == {target},
        timeout_s=600,
        interval=5,
    )
    snapshot(node, f"pinned to v{target}")
    assert pinned == (target, "Ready")
    assert served == {target}
