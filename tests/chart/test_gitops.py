"""GitOps health of ModelCustomization: the Argo CD Lua script and the Flux CEL expressions.

The authoritative check runs the engines the tools really run (hack/gitops-health, Go: gopher-lua,
Flux's own CEL status evaluator and kstatus) over fixtures of each lifecycle stage. The quick
checks here run the same script and expressions in lupa (Lua 5.1) and cel-python.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from bespoke_operator.reconcile import DriftReport, TrainerRun, TrainerSummary
from tests.chart.chartlib import REPO_ROOT

lupa = pytest.importorskip("lupa", reason="lupa runs the Argo CD Lua health script")
celpy = pytest.importorskip("celpy", reason="cel-python evaluates the Flux health expressions")

GITOPS = REPO_ROOT / "examples" / "gitops"
LUA_SCRIPT = (GITOPS / "argocd" / "modelcustomization-health.lua").read_text()
ARGOCD_KEY = "resource.customizations.health.bespoke.dev_ModelCustomization"
DOC = (REPO_ROOT / "docs" / "gitops.md").read_text()
FIXTURES = yaml.safe_load(
    (Path(__file__).parent / "fixtures" / "modelcustomization-health.yaml").read_text()
)["cases"]
CASE_IDS = [case["name"] for case in FIXTURES]


def _flux_check() -> dict[str, Any]:
    kustomization = yaml.safe_load((GITOPS / "flux" / "kustomization.yaml").read_text())
    checks = kustomization["spec"]["healthCheckExprs"]
    assert [(c["apiVersion"], c["kind"]) for c in checks] == [
        ("bespoke.dev/v1alpha1", "ModelCustomization")
    ]
    check: dict[str, Any] = checks[0]
    return check


def _lua_runtime() -> Any:
    try:
        from lupa import lua51  # Argo CD embeds gopher-lua, a Lua 5.1

        return lua51.LuaRuntime(unpack_returned_tuples=True)
    except ImportError:
        return lupa.LuaRuntime(unpack_returned_tuples=True)


def argocd_health(obj: dict[str, Any]) -> tuple[str, str]:
    """Run the Lua script the way Argo CD does: `obj` is a global, the script returns hs."""
    lua = _lua_runtime()
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(LUA_SCRIPT)
    return str(result["status"]), str(result["message"])


def flux_health(obj: dict[str, Any]) -> tuple[str, list[str]]:
    """Evaluate inProgress, failed, current in Flux's order; none true means InProgress.

    Also returns every expression that evaluated true, to check that they never overlap.
    """
    check = _flux_check()
    env = celpy.Environment()
    activation = {key: celpy.json_to_cel(value) for key, value in obj.items()}
    matched = []
    for field in ("inProgress", "failed", "current"):
        program = env.program(env.compile(check[field]))
        if bool(program.evaluate(activation)):
            matched.append(field)
    names = {"inProgress": "InProgress", "failed": "Failed", "current": "Current"}
    return (names[matched[0]] if matched else "InProgress"), matched


@pytest.mark.parametrize("case", FIXTURES, ids=CASE_IDS)
def test_argocd_lua_health(case: dict[str, Any]) -> None:
    status, message = argocd_health(case["object"])
    assert status == case["expected"]["argocd"]
    assert case["expected"]["argocdMessageContains"] in message


@pytest.mark.parametrize("case", FIXTURES, ids=CASE_IDS)
def test_flux_cel_health(case: dict[str, Any]) -> None:
    status, matched = flux_health(case["object"])
    assert status == case["expected"]["flux"]
    # Mutually exclusive, so Flux's evaluation order cannot change the outcome.
    assert len(matched) <= 1, matched


def test_fixtures_cover_every_lifecycle_stage() -> None:
    assert {case["expected"]["argocd"] for case in FIXTURES} == {
        "Progressing",
        "Healthy",
        "Degraded",
        "Suspended",
    }
    assert {case["expected"]["flux"] for case in FIXTURES} == {"InProgress", "Current", "Failed"}
    assert {case["expected"]["kstatus"] for case in FIXTURES} == {
        "InProgress",
        "Current",
        "Failed",
    }


GO_PROGRAM = REPO_ROOT / "hack" / "gitops-health"
# Flux's CEL status evaluator needs this Go; the module proxy serves it (Makefile GITOPS_GO).
GO_TOOLCHAIN = "go1.27.3"


def _run_go_engines(fixtures: list[dict[str, Any]], extra_env: dict[str, str]) -> str:
    """`go test` of hack/gitops-health; every fixture must pass with every engine."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("Go is not installed: the GitOps engines are Go libraries")
    env = {**os.environ, "GOTOOLCHAIN": GO_TOOLCHAIN, **extra_env}
    result = subprocess.run(
        ["nice", "-n", "10", go, "test", "-count=1", "-v", "./..."],
        cwd=GO_PROGRAM,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    for case in fixtures:
        name = case["name"].replace(" ", "_")
        assert f"--- PASS: TestEveryFixtureWithEveryEngine/{name} " in result.stdout, name
    return result.stdout


@pytest.mark.slow
def test_the_real_engines_compute_every_fixtures_expected_health() -> None:
    """Argo CD's gopher-lua, Flux's CEL status evaluator and kstatus, in Go (make gitops-health).

    No evaluation error on any fixture, and each engine's answer is the fixture's.
    """
    _run_go_engines(FIXTURES, {})


def _stages() -> list[tuple[str, tuple[str, str, str], dict[str, Any]]]:
    """The statuses the operator's own core (decide) writes at each stage, as objects."""
    from tests.operator.unit.reconcile.world import InMemoryWorld, customization

    good = {"accuracy": 0.93, "macroF1": 0.91, "evalLoss": 0.2}
    stages: list[tuple[str, tuple[str, str, str], dict[str, Any]]] = []

    def snap(name: str, health: tuple[str, str, str], world: InMemoryWorld) -> None:
        body = {**world.document, "status": world.status}
        stages.append((name, health, json.loads(json.dumps(body))))

    world = InMemoryWorld(customization(monitoring__onDrift={"action": "retrain"}))
    world.reconcile()
    snap("core: training v1", ("Progressing", "InProgress", "InProgress"), world)
    world.finish(1, **good)
    world.reconcile()
    world.become_available()
    world.reconcile()
    snap("core: v1 serving", ("Healthy", "Current", "Current"), world)
    world.tick(60)
    world.drift = DriftReport(
        version=1,
        checked_at=world.now,
        drift_share=0.8,
        dataset_drift=True,
        window_rows=500,
        drifted_features=("length",),
    )
    world.reconcile()
    assert world.condition("Training") == "True", world.status
    snap("core: drift retrain while v1 serves", ("Healthy", "Current", "Current"), world)
    world.outage()
    world.reconcile()
    snap("core: production outage", ("Degraded", "InProgress", "InProgress"), world)

    approval = InMemoryWorld(customization(evaluation__requireApproval=True))
    approval.reconcile()
    approval.finish(1, **good)
    approval.reconcile()
    snap("core: first version awaits approval", ("Suspended", "Current", "InProgress"), approval)

    failing = InMemoryWorld(customization())
    failing.reconcile()
    bad = TrainerSummary(outcome="Failed", reason="InvalidData", message="fix me", exitCode=3)
    failing.finish(1, TrainerRun(1, 1, "Failed", summary=bad))
    failing.reconcile()
    snap("core: training failed, nothing serves", ("Degraded", "Failed", "Failed"), failing)

    changed = InMemoryWorld(customization())
    changed.reconcile()
    changed.finish(1, **good)
    changed.reconcile()
    changed.become_available()
    changed.reconcile()
    changed.document["spec"]["training"]["epochs"] = 6
    changed.document["metadata"]["generation"] = 2
    changed.reconcile()
    oom = TrainerSummary(outcome="Failed", reason="OutOfMemory", message="oom", exitCode=5)
    changed.finish(2, TrainerRun(2, 1, "Failed", summary=oom))
    changed.reconcile()
    snap(
        "core: spec change's training failed, v1 serves", ("Degraded", "Failed", "Failed"), changed
    )
    return stages


@pytest.mark.slow
def test_the_real_engines_read_the_statuses_the_operator_core_writes(tmp_path: Path) -> None:
    """Not hand-written fixtures: decide's own statuses through the same engines."""
    cases = [
        {
            "name": name,
            "expected": {
                "argocd": argocd,
                "flux": flux,
                "kstatus": kstatus,
                "argocdMessageContains": "",
            },
            "object": body,
        }
        for name, (argocd, flux, kstatus), body in _stages()
    ]
    path = tmp_path / "core-fixtures.yaml"
    path.write_text(yaml.safe_dump({"cases": cases}))
    _run_go_engines(cases, {"GITOPS_HEALTH_FIXTURES": str(path)})


def test_argocd_configmap_patch_embeds_the_same_script() -> None:
    patch = yaml.safe_load((GITOPS / "argocd" / "argocd-cm-patch.yaml").read_text())
    assert patch["data"][ARGOCD_KEY] == LUA_SCRIPT


def _fenced(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC, flags=re.DOTALL)


def test_doc_shows_the_tested_lua_script() -> None:
    assert LUA_SCRIPT in _fenced("lua")


def test_doc_shows_the_tested_flux_expressions() -> None:
    shown = [yaml.safe_load(block) for block in _fenced("yaml")]
    snippets = [s for s in shown if isinstance(s, dict) and "healthCheckExprs" in s]
    assert snippets, "docs/gitops.md has no healthCheckExprs snippet"
    assert snippets[0]["healthCheckExprs"][0] == _flux_check()


def test_examples_are_valid_yaml_with_kinds() -> None:
    kinds = {
        doc["kind"]
        for path in GITOPS.rglob("*.yaml")
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    }
    assert {"Application", "ConfigMap", "GitRepository", "HelmRelease", "Kustomization"} <= kinds


def test_fixture_statuses_match_the_generated_crd() -> None:
    crd_file = REPO_ROOT / "charts" / "bespoke" / "crds" / "bespoke.dev_modelcustomizations.yaml"
    if not crd_file.is_file():
        pytest.skip("charts/bespoke/crds/ is not generated yet (make manifests)")
    crd = yaml.safe_load(crd_file.read_text())
    served = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
    status_schema = served["schema"]["openAPIV3Schema"]["properties"]["status"]
    for case in FIXTURES:
        if "status" in case["object"]:
            jsonschema.validate(case["object"]["status"], status_schema)
