"""The chart through the real helm binary: lint, render, toggles, RBAC, images and the schema."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from bespoke_operator.settings import OperatorSettings
from tests.chart.chartlib import (
    ALL_TOGGLES,
    CHART_DIR,
    NAMESPACED,
    REPO_ROOT,
    Manifest,
    Render,
    by_kind,
    one,
    run_helm,
)

CHART = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
APP_VERSION = CHART["appVersion"]
RECOMMENDED_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/part-of",
    "helm.sh/chart",
)
MONITORING_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}


@pytest.mark.parametrize(
    "values", [{}, ALL_TOGGLES, NAMESPACED], ids=["defaults", "all-toggles", "namespaced"]
)
def test_helm_lint_strict_passes(helm: str, values: Manifest, tmp_path: Path) -> None:
    result = run_helm(helm, "lint", "--strict", str(CHART_DIR), values=[values], tmp_dir=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_defaults_render_only_core_objects(render: Render) -> None:
    kinds = sorted(m["kind"] for m in render())
    assert kinds == sorted(
        [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRole",
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Service",
            "Deployment",
            "PodDisruptionBudget",
        ]
    )


def test_every_toggle_adds_its_object(render: Render) -> None:
    manifests = render(ALL_TOGGLES)
    assert {m["kind"] for m in manifests} >= MONITORING_KINDS
    dashboard = one(manifests, "ConfigMap", "-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads((CHART_DIR / "dashboards" / "bespoke.json").read_text())
    assert json.loads(dashboard["data"]["bespoke.json"]) == shipped


def test_dashboard_sidecar_label_and_folder_are_configurable(render: Render) -> None:
    values = {
        "grafanaDashboard": {
            "enabled": True,
            "sidecarLabel": "grafana.io/dashboard",
            "sidecarLabelValue": "bespoke",
            "folder": "ML",
            "namespace": "monitoring",
        }
    }
    dashboard = one(render(values), "ConfigMap", "-dashboard")
    assert dashboard["metadata"]["labels"]["grafana.io/dashboard"] == "bespoke"
    assert "grafana_dashboard" not in dashboard["metadata"]["labels"]
    assert dashboard["metadata"]["annotations"]["grafana_folder"] == "ML"
    assert dashboard["metadata"]["namespace"] == "monitoring"


@pytest.mark.parametrize("values", [{}, ALL_TOGGLES, NAMESPACED], ids=["defaults", "all", "ns"])
def test_every_object_carries_the_recommended_labels(render: Render, values: Manifest) -> None:
    for manifest in render(values):
        labels = manifest["metadata"]["labels"]
        missing = [key for key in RECOMMENDED_LABELS if key not in labels]
        assert not missing, f"{manifest['kind']}/{manifest['metadata']['name']} lacks {missing}"
        assert labels["app.kubernetes.io/version"] == APP_VERSION


def test_operator_runs_two_replicas_one_leading_rolled_under_a_disruption_budget(
    render: Render,
) -> None:
    manifests = render()
    deployment = one(manifests, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    # A new standby starts before an old pod stops; the stopping leader hands the Lease over.
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    container = spec["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert "--liveness=http://0.0.0.0:8080/healthz" in container["args"]
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "metrics": 9090,
        "health": 8080,
    }
    assert "--all-namespaces" in container["args"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["BESPOKE_LEADER_ELECTION"] == "true"
    assert env["BESPOKE_LEADER_ELECTION_LEASE"] == "rel-bespoke-operator"
    # The standby's own /healthz answers the same probe until it leads.
    assert env["BESPOKE_HEALTH_PORT"] == "8080"
    # The settings the chart passes are ones the operator accepts (timings in order).
    namespace_env = {"BESPOKE_OPERATOR_NAMESPACE": "bespoke-system"}
    settings = OperatorSettings.from_env({**{k: v for k, v in env.items() if v}, **namespace_env})
    assert settings.leader_election
    assert settings.lease_namespace == "bespoke-system"
    pdb = one(manifests, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"] == spec["selector"]


def test_leader_election_rbac_is_one_lease_in_the_release_namespace(render: Render) -> None:
    manifests = render()
    role = one(manifests, "Role")
    assert role["metadata"]["namespace"] == "bespoke-system"
    rules = [(r["verbs"], r.get("resourceNames")) for r in role["rules"]]
    assert rules == [(["create"], None), (["get", "update"], ["rel-bespoke-operator"])]
    assert {r["apiGroups"][0] + "/" + r["resources"][0] for r in role["rules"]} == {
        "coordination.k8s.io/leases"
    }
    binding = one(manifests, "RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]


def test_without_leader_election_one_replica_is_replaced_not_rolled(render: Render) -> None:
    manifests = render({"operator": {"leaderElection": {"enabled": False}, "replicas": 1}})
    spec = one(manifests, "Deployment")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    assert not by_kind(manifests, "PodDisruptionBudget")
    assert not by_kind(manifests, "Role")
    env = spec["template"]["spec"]["containers"][0]["env"]
    assert "BESPOKE_LEADER_ELECTION" not in {e["name"] for e in env}


def test_namespaced_mode_passes_each_namespace_to_kopf(render: Render) -> None:
    args = one(render(NAMESPACED), "Deployment")["spec"]["template"]["spec"]["containers"][0][
        "args"
    ]
    assert "--all-namespaces" not in args
    assert [a for a in args if a.startswith("--namespace=")] == [
        "--namespace=team-a",
        "--namespace=team-b",
    ]


def _env(manifests: list[Manifest]) -> dict[str, Any]:
    container = one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in container["env"]}


def test_images_follow_the_app_version(render: Render) -> None:
    manifests = render()
    container = one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"ghcr.io/bespoke-dev/bespoke-operator:{APP_VERSION}"
    env = _env(manifests)
    assert env["BESPOKE_TRAINER_IMAGE"] == f"ghcr.io/bespoke-dev/bespoke-trainer:{APP_VERSION}"
    assert env["BESPOKE_SERVING_IMAGE"] == f"ghcr.io/bespoke-dev/bespoke-serving:{APP_VERSION}"
    annotated = yaml.safe_load(CHART["annotations"]["artifacthub.io/images"])
    assert {i["image"] for i in annotated} == {
        container["image"],
        env["BESPOKE_TRAINER_IMAGE"],
        env["BESPOKE_SERVING_IMAGE"],
    }


def test_image_digest_pins_the_image(render: Render) -> None:
    digest = "sha256:" + "a" * 64
    values = {
        "operator": {"image": {"tag": "0.0.9", "digest": digest}},
        "trainer": {"image": {"digest": digest}},
    }
    manifests = render(values)
    container = one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"ghcr.io/bespoke-dev/bespoke-operator:0.0.9@{digest}"
    assert _env(manifests)["BESPOKE_TRAINER_IMAGE"].endswith(f":{APP_VERSION}@{digest}")


def _rules(manifests: list[Manifest]) -> list[dict[str, Any]]:
    return [rule for role in by_kind(manifests, "ClusterRole") for rule in role["rules"]]


@pytest.mark.parametrize("values", [{}, NAMESPACED], ids=["cluster", "namespaced"])
def test_rbac_has_no_wildcards_and_no_secret_access(render: Render, values: Manifest) -> None:
    roles = by_kind(render(values), "ClusterRole") + by_kind(render(values), "Role")
    for role in roles:
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule.get(field, []), (role["metadata"]["name"], rule)
            assert "secrets" not in rule["resources"], (role["metadata"]["name"], rule)


def test_operator_role_grants_what_the_operator_needs(render: Render) -> None:
    role = one(render(), "ClusterRole", "-operator")
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    needed = [
        ("bespoke.dev", "modelcustomizations", "watch"),
        ("bespoke.dev", "modelcustomizations/status", "patch"),
        ("bespoke.dev", "modelversions", "create"),
        ("bespoke.dev", "modelversions/status", "patch"),
        ("batch", "jobs", "create"),
        ("", "configmaps", "create"),
        ("apps", "deployments", "patch"),
        ("", "services", "create"),
        ("policy", "poddisruptionbudgets", "create"),
        ("", "pods", "watch"),
        ("", "events", "create"),
        ("events.k8s.io", "events", "create"),
    ]
    assert [n for n in needed if n not in granted] == []
    # Pods are only read: the operator creates Jobs and Deployments, never bare pods.
    assert not {v for g, r, v in granted if r == "pods"} - {"get", "list", "watch"}


def test_edit_role_can_approve_a_version_and_nothing_more_on_versions(render: Render) -> None:
    # Aggregated into the built-in `edit` and `admin` roles: `kubectl annotate modelversion ...
    # bespoke.dev/approved=true` needs `patch`; the spec is immutable, the status a subresource.
    role = one(render(), "ClusterRole", "-edit")
    assert role["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    on_versions = {
        (resource, verb)
        for rule in role["rules"]
        if "bespoke.dev" in rule["apiGroups"]
        for resource in rule["resources"]
        if resource.startswith("modelversions")
        for verb in rule["verbs"]
    }
    assert on_versions == {("modelversions", "patch")}


def test_cluster_mode_binds_cluster_wide(render: Render) -> None:
    manifests = render()
    bound = {b["roleRef"]["name"] for b in by_kind(manifests, "ClusterRoleBinding")}
    assert bound == {"rel-bespoke-operator", "rel-bespoke-discovery"}
    # The one namespaced binding is leader election's, in the release namespace.
    assert [b["roleRef"]["kind"] for b in by_kind(manifests, "RoleBinding")] == ["Role"]
    discovery = one(manifests, "ClusterRole", "-discovery")
    assert any("namespaces" in r["resources"] for r in discovery["rules"])


def test_namespaced_mode_binds_only_the_listed_namespaces(render: Render) -> None:
    manifests = render(NAMESPACED)
    bound = {b["roleRef"]["name"] for b in by_kind(manifests, "ClusterRoleBinding")}
    assert bound == {"rel-bespoke-discovery"}
    bindings = [b for b in by_kind(manifests, "RoleBinding") if b["roleRef"]["kind"] != "Role"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    assert {b["roleRef"]["name"] for b in bindings} == {"rel-bespoke-operator"}
    for binding in bindings:
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "rel-bespoke", "namespace": "bespoke-system"}
        ]
    # kopf lists namespaces in either mode; it reads their names only.
    discovery = one(manifests, "ClusterRole", "-discovery")
    assert [r["verbs"] for r in discovery["rules"] if "namespaces" in r["resources"]] == [
        ["list", "watch"]
    ]


def test_podmonitor_follows_the_watched_namespaces(render: Render) -> None:
    cluster = one(render(ALL_TOGGLES), "PodMonitor")["spec"]
    assert cluster["namespaceSelector"] == {"any": True}
    assert cluster["selector"]["matchLabels"] == {
        "app.kubernetes.io/component": "serving",
        "app.kubernetes.io/part-of": "bespoke",
    }
    assert cluster["podMetricsEndpoints"][0]["port"] == "http"
    namespaced = one(render(ALL_TOGGLES, NAMESPACED), "PodMonitor")["spec"]
    assert namespaced["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}


def test_no_image_uses_latest(render: Render) -> None:
    env = _env(render())
    images = [env["BESPOKE_TRAINER_IMAGE"], env["BESPOKE_SERVING_IMAGE"]]
    containers = one(render(), "Deployment")["spec"]["template"]["spec"]["containers"]
    images += [c["image"] for c in containers]
    assert all(not image.endswith(":latest") and ":" in image for image in images)


INVALID_VALUES = [
    ({"operator": {"image": {"tag": "latest"}}}, "operator.image.tag"),
    ({"operator": {"image": {"digest": "sha256:xyz"}}}, "operator.image.digest"),
    ({"watch": {"mode": "everywhere"}}, "watch.mode"),
    ({"watch": {"mode": "namespaces", "namespaces": []}}, "watch.namespaces"),
    ({"watch": {"mode": "namespaces", "namespaces": ["Team_A"]}}, "watch.namespaces.0"),
    ({"operator": {"logLevel": "loud"}}, "operator.logLevel"),
    ({"operator": {"replicas": 0}}, "operator.replicas"),
    ({"operator": {"leaderElection": {"enabled": False}}}, "operator.leaderElection.enabled"),
    ({"prometheusRule": {"reconcileErrorRatio": 2}}, "prometheusRule.reconcileErrorRatio"),
    ({"prometheusRule": {"driftFor": "soon"}}, "prometheusRule.driftFor"),
    ({"grafanaDashboard": {"sidecarLabel": ""}}, "grafanaDashboard.sidecarLabel"),
    ({"metrics": {"service": {"port": 70000}}}, "metrics.service.port"),
]


@pytest.mark.parametrize(("values", "field"), INVALID_VALUES, ids=[f for _, f in INVALID_VALUES])
def test_schema_rejects_invalid_values_with_a_message(
    helm: str, tmp_path: Path, values: Manifest, field: str
) -> None:
    result = run_helm(helm, "template", "rel", str(CHART_DIR), values=[values], tmp_dir=tmp_path)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert field in result.stderr, result.stderr


def _leaf_paths(tree: Any, prefix: str = "") -> list[str]:
    if isinstance(tree, dict) and tree:
        return [p for key, value in tree.items() for p in _leaf_paths(value, f"{prefix}{key}.")]
    return [prefix.rstrip(".")]


def _schema_has(schema: dict[str, Any], path: str) -> bool:
    node = schema
    for part in path.split("."):
        properties = node.get("properties", {})
        if part in properties:
            node = properties[part]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]
        else:
            return False
    return any(key in node for key in ("type", "anyOf", "description"))


def test_every_value_is_typed_in_the_schema_and_documented_in_the_readme() -> None:
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    readme = (CHART_DIR / "README.md").read_text()
    leaves = _leaf_paths(values)
    assert [p for p in leaves if not _schema_has(schema, p)] == []
    # A map-valued default (resources) is documented as a whole.
    undocumented = [
        p
        for p in leaves
        if not any(f"`{'.'.join(p.split('.')[:n])}`" in readme for n in range(1, p.count(".") + 2))
    ]
    assert undocumented == []


def _render_notes(helm: str, tmp_path: Path, values: Manifest, namespace: str) -> str:
    # `helm install --dry-run` needs a reachable cluster and `helm template` skips NOTES.txt, so
    # render a copy of the chart whose NOTES.txt is also emitted inside a ConfigMap.
    chart = tmp_path / "bespoke"
    shutil.copytree(CHART_DIR, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "_notes_under_test.tpl").write_text(
        '{{- define "notes-under-test" -}}\n' + notes + "{{- end }}\n"
    )
    (chart / "templates" / "notes-under-test.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: |\n"
        '{{ include "notes-under-test" . | indent 4 }}\n'
    )
    result = run_helm(
        helm,
        "template",
        "rel",
        str(chart),
        "--namespace",
        namespace,
        "--show-only",
        "templates/notes-under-test.yaml",
        values=[values],
        tmp_dir=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    return str(yaml.safe_load(result.stdout)["data"]["notes"])


def test_notes_say_what_to_do_next(helm: str, tmp_path: Path) -> None:
    notes = _render_notes(helm, tmp_path, NAMESPACED, "ops")
    assert "The operator watches: team-a, team-b." in notes
    assert "kubectl -n ops rollout status deployment/rel-bespoke-operator" in notes
    assert "kubectl get crd modelcustomizations.bespoke.dev" in notes
    assert "port-forward svc/rel-bespoke-metrics 9090" in notes
    with_monitoring = _render_notes(helm, tmp_path / "all", ALL_TOGGLES, "ops")
    assert "The operator watches every namespace." in with_monitoring
    assert "ServiceMonitor rel-bespoke-operator" in with_monitoring
    assert "uid bespoke-overview" in with_monitoring


CAPABILITY_LEVELS = {
    "Basic Install",
    "Seamless Upgrades",
    "Full Lifecycle",
    "Deep Insights",
    "Auto Pilot",
}


def test_artifact_hub_annotations_are_well_formed() -> None:
    annotations = CHART["annotations"]
    assert annotations["artifacthub.io/operator"] == "true"
    assert annotations["artifacthub.io/operatorCapabilities"] in CAPABILITY_LEVELS
    assert annotations["artifacthub.io/category"] == "ai-machine-learning"
    crds = yaml.safe_load(annotations["artifacthub.io/crds"])
    assert {c["name"] for c in crds} == {
        "modelcustomizations.bespoke.dev",
        "modelversions.bespoke.dev",
    }
    for link in yaml.safe_load(annotations["artifacthub.io/links"]):
        assert link["url"].startswith("https://")


def _crd_files() -> dict[str, Manifest]:
    found: dict[str, Manifest] = {}
    for path in sorted((CHART_DIR / "crds").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                found[doc["metadata"]["name"]] = doc
    return found


def test_annotated_crds_and_example_match_the_generated_crds() -> None:
    crds = _crd_files()
    if not crds:
        pytest.skip("charts/bespoke/crds/ is not generated yet (make manifests)")
    annotated = yaml.safe_load(CHART["annotations"]["artifacthub.io/crds"])
    assert {c["name"] for c in annotated} == set(crds)
    for example in yaml.safe_load(CHART["annotations"]["artifacthub.io/crdsExamples"]):
        group, version = example["apiVersion"].split("/")
        crd = next(
            c
            for c in crds.values()
            if c["spec"]["group"] == group and c["spec"]["names"]["kind"] == example["kind"]
        )
        served = next(v for v in crd["spec"]["versions"] if v["name"] == version)
        schema = served["schema"]["openAPIV3Schema"]
        jsonschema.validate({"spec": example["spec"]}, {**schema, "required": ["spec"]})


def test_app_version_follows_the_project_version() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == APP_VERSION


def test_renders_on_the_oldest_supported_kubernetes(helm: str, tmp_path: Path) -> None:
    oldest = CHART["kubeVersion"].removeprefix(">=").removesuffix("-0")
    result = run_helm(
        helm,
        "template",
        "rel",
        str(CHART_DIR),
        "--kube-version",
        oldest,
        values=[ALL_TOGGLES],
        tmp_dir=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    too_old = run_helm(
        helm, "template", "rel", str(CHART_DIR), "--kube-version", "1.27.0", tmp_dir=tmp_path
    )
    assert too_old.returncode != 0
    assert "incompatible with Kubernetes" in too_old.stderr


def test_an_unstamped_server_version_is_what_helm_refuses(helm: str, tmp_path: Path) -> None:
    """Why `helm install` once failed on the envtest harness (see test_chart_install.py)."""
    unstamped = run_helm(
        helm, "template", "rel", str(CHART_DIR), "--kube-version", "v0.0.0-master", tmp_dir=tmp_path
    )
    assert unstamped.returncode != 0
    assert (
        f"chart requires kubeVersion: {CHART['kubeVersion']} which is incompatible with"
        " Kubernetes v0.0.0-master" in unstamped.stderr
    )
    stamped = run_helm(
        helm, "template", "rel", str(CHART_DIR), "--kube-version", "v1.34.4", tmp_dir=tmp_path
    )
    assert stamped.returncode == 0, stamped.stderr
