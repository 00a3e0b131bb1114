"""The local runtime end to end with the real trainer, a real `bentoml serve` and real drift.

The support-tickets story on a smaller dataset: v1 trained, gated and served; drifted traffic
detected; exactly one drift retrain (the cooldown holds); a rerun resumes instead of retraining;
a candidate that fails its gates leaves production untouched; an interrupted run continues from
the trainer's checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bespoke_operator import kube_yaml

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "support-tickets"
SEED = Path(__file__).resolve().parents[3] / "hack" / "seed_model_cache.py"


def _generator() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("support_tickets", EXAMPLE / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _example(root: Path, **training: Any) -> Path:
    """A small copy of the flagship example under `root`."""
    gen = _generator()
    _write_jsonl(root / "data" / "train.jsonl", gen.stream(420, gen.TRAIN_MIX, seed=21))
    _write_jsonl(
        root / "data" / "recent-labelled.jsonl",
        gen.stream(150, gen.DRIFT_MIX, seed=22, drifted=True),
    )
    _write_jsonl(
        root / "traffic" / "drifted.jsonl", gen.stream(200, gen.DRIFT_MIX, seed=23, drifted=True)
    )
    document = yaml.safe_load((EXAMPLE / "customization.yaml").read_text())
    spec = document["spec"]
    spec["training"].update(
        {"epochs": 3, "learningRate": "3e-3", "checkpointEverySteps": 4, **training}
    )
    spec["evaluation"]["gates"] = [
        {"metric": "accuracy", "min": "0.6"},
        {"metric": "macroF1", "min": "0.5"},
    ]
    spec["evaluation"]["championDelta"] = {"metric": "macroF1", "minImprovement": "-0.5"}
    spec["monitoring"].update({"windowSize": 40, "intervalSeconds": 5})
    path = root / "customization.yaml"
    path.write_text(kube_yaml.dump(document))
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Offline Hub access to the packaged MiniLM, in a private Hugging Face cache."""
    home = tmp_path_factory.mktemp("hf")
    environment = {**os.environ, "HF_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, str(SEED)], env=environment, check=True, capture_output=True)
    return environment


def _bespoke(
    *args: str, env: dict[str, str], timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bespoke_operator", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _versions(state: Path) -> dict[int, dict[str, Any]]:
    return {
        int(p.stem[1:]): json.loads(p.read_text())
        for p in (state / "support-tickets" / "versions").glob("v*.json")
    }


def _classify(endpoint: str, texts: list[str]) -> list[str]:
    request = urllib.request.Request(
        f"{endpoint}/classify",
        data=json.dumps({"texts": texts}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return [answer["label"] for answer in json.loads(response.read())]


@pytest.fixture(scope="module")
def story(
    tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]
) -> Iterator[tuple[Path, Path]]:
    root = tmp_path_factory.mktemp("story")
    yield _example(root), root / "state"
    _bespoke("stop", "support-tickets", "--state-dir", str(root / "state"), env=env)


def test_served_drift_detected_and_retrained_once(
    story: tuple[Path, Path], env: dict[str, str]
) -> None:
    file, state = story
    result = _bespoke(
        "run",
        str(file),
        "--state-dir",
        str(state),
        "--traffic",
        "drifted",
        "--keep-serving",
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    versions = _versions(state)
    triggers = [versions[n]["spec"]["trigger"] for n in sorted(versions)]
    assert triggers == ["Initial", "Drift"], result.stdout  # one retrain: the cooldown held
    assert versions[2]["spec"]["parentVersion"] == 1  # warm-started from production
    assert versions[2]["status"]["phase"] in ("Promoted", "Rejected")
    lines = (state / "support-tickets" / "events.jsonl").read_text().splitlines()
    events = [json.loads(line)["reason"] for line in lines]
    assert {"Promoted", "DriftDetected", "RetrainingStarted"} <= set(events)
    serving = json.loads((state / "support-tickets" / "serving.json").read_text())
    labels = _classify(
        f"http://127.0.0.1:{serving['port']}",
        [
            "I was charged twice, please refund the overcharge on my invoice.",
            "My account is locked and the password reset email never arrives.",
            "Where is my package? Tracking says in transit for a week.",
        ],
    )
    assert labels == ["billing", "account", "shipping"]


def test_rerun_resumes_and_rejected_candidate_keeps_production(
    story: tuple[Path, Path], env: dict[str, str]
) -> None:
    file, state = story
    production = json.loads((state / "support-tickets" / "customization.json").read_text())[
        "status"
    ]["productionVersion"]
    again = _bespoke("run", str(file), "--state-dir", str(state), "--keep-serving", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Resuming" in again.stdout
    assert len(_versions(state)) == 2  # nothing retrained

    document = yaml.safe_load(file.read_text())
    document["spec"]["training"]["epochs"] = 1
    document["spec"]["evaluation"]["gates"] = [{"metric": "accuracy", "min": "0.9999"}]
    file.write_text(kube_yaml.dump(document))
    rejected = _bespoke("run", str(file), "--state-dir", str(state), "--keep-serving", env=env)
    # The spec change failed its gates: the customization is Stalled (exit 3, not Ready) until
    # the file changes, while production keeps serving the earlier version.
    assert rejected.returncode == 3, rejected.stdout + rejected.stderr
    versions = _versions(state)
    assert versions[3]["spec"]["trigger"] == "SpecChange"
    assert versions[3]["status"]["phase"] == "Rejected"
    status = json.loads((state / "support-tickets" / "customization.json").read_text())["status"]
    assert status["productionVersion"] == production
    assert status["phase"] == "Failed"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Stalled"]["status"] == "True"
    assert conditions["Stalled"]["reason"] == "GatesFailed"
    assert conditions["Reconciling"]["status"] == "False"


def test_interrupted_run_continues_from_the_checkpoint(tmp_path: Path, env: dict[str, str]) -> None:
    file = _example(tmp_path, epochs=4)
    state = tmp_path / "state"
    # A shell without job control starts background commands with SIGINT ignored, and a child
    # inherits an ignored signal: while it starts, this process takes a handler (reset to the
    # default in the child), so the run gets a terminal's Ctrl-C whoever runs the suite.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "bespoke_operator", "run", str(file), "--state-dir", str(state)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    finally:
        signal.signal(signal.SIGINT, inherited)
    log = state / "support-tickets" / "runs" / "v1-1" / "trainer.log"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not (
        log.exists() and "Saved checkpoint" in log.read_text()
    ):
        time.sleep(1)
    assert log.exists()
    assert "Saved checkpoint" in log.read_text()
    process.send_signal(signal.SIGINT)  # Ctrl-C: the run stops its trainer
    output, _ = process.communicate(timeout=120)
    assert "Interrupted" in output
    resumed = _bespoke("run", str(file), "--state-dir", str(state), env=env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    versions = _versions(state)
    assert list(versions) == [1]  # the version was kept, not recreated
    assert versions[1]["status"]["phase"] == "Promoted"
    second = (state / "support-tickets" / "runs" / "v1-2" / "trainer.log").read_text()
    assert "Resuming from checkpoint at step" in second  # it did not start over
    # The resumed run echoes the second attempt's progress only; the first's was shown before.
    echoed = [line for line in resumed.stdout.splitlines() if line.startswith("  v1 trainer ")]
    logged = [
        line
        for line in second.splitlines()
        if " bespoke_trainer" in line and (" INFO " in line or " ERROR " in line)
    ]
    assert len(echoed) == len(logged)
    assert "Earlier trainer logs (1 attempt(s))" in resumed.stdout
