"""Resume after a kill, and early stopping on a planted-overfit run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from trainer_helpers import ConfigFactory, keyword_rows, summary_of, write_config, write_jsonl

from bespoke_trainer.__main__ import main

REPO = Path(__file__).resolve().parents[2]


def test_killed_run_resumes_from_its_checkpoint_and_matches_an_uninterrupted_run(
    tmp_path: Path, make_config: ConfigFactory, tiny_bert: Path
) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", keyword_rows(300, seed=2))
    common = {
        "method": {"type": "full"},
        "training": {
            "epochs": 3,
            "batchSize": 8,
            "learningRate": "1e-3",
            "checkpointEverySteps": 10,
            "evalEverySteps": 15,
        },
    }
    straight = make_config(model=tiny_bert, train=train, output=tmp_path / "a" / "v1", **common)
    assert main(["--config", str(write_config(tmp_path, straight, "a.json"))]) == 0

    resumed = make_config(model=tiny_bert, train=train, output=tmp_path / "b" / "v1", **common)
    config_path = write_config(tmp_path, resumed, "b.json")
    env = {**os.environ, "PYTHONPATH": str(REPO / "trainer")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bespoke_trainer", "--config", str(config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    killed_after = None
    for line in proc.stdout:
        if "Saved checkpoint at step 20" in line:
            proc.send_signal(signal.SIGKILL)  # a preempted pod gets no chance to clean up
            killed_after = 20
            break
    proc.wait(timeout=120)
    proc.stdout.close()
    assert killed_after == 20
    assert proc.returncode == -signal.SIGKILL
    version_dir = tmp_path / "b" / "v1"
    assert not version_dir.exists(), "a killed run must not leave a version"
    assert list((tmp_path / "b" / ".v1.partial" / "checkpoints").glob("step-*"))

    assert main(["--config", str(config_path)]) == 0
    doc = json.loads((version_dir / "metrics.json").read_text())
    assert doc["training"]["resumedFromStep"] >= killed_after
    assert doc["training"]["resumedFromStep"] < doc["training"]["totalSteps"]
    expected = json.loads((tmp_path / "a" / "v1" / "metrics.json").read_text())
    assert doc["headline"] == pytest.approx(expected["headline"], abs=1e-6)
    assert summary_of(resumed)["metrics"] == pytest.approx(
        summary_of(straight)["metrics"], abs=1e-6
    )
    assert [h["step"] for h in doc["training"]["history"]] == [
        h["step"] for h in expected["training"]["history"]
    ]


def test_early_stopping_ends_a_planted_overfit_run_before_its_epoch_budget(
    tmp_path: Path, make_config: ConfigFactory, tiny_bert: Path
) -> None:
    # Labels are coin flips: anything learned is memorisation, so validation loss only rises.
    rng = random.Random(5)
    rows = [
        {"text": f"item {rng.choice(['one', 'two', 'three'])} {i}", "label": rng.choice("ab")}
        for i in range(160)
    ]
    config = make_config(
        model=tiny_bert,
        train=write_jsonl(tmp_path / "noise.jsonl", rows),
        method={"type": "full"},
        training={
            "epochs": 30,
            "batchSize": 16,
            "learningRate": "1e-2",
            "warmupRatio": "0",
            "earlyStopping": {"metric": "evalLoss", "patience": 2},
        },
        dataset={"minExamplesPerClass": 2},
    )
    config["dataset"]["train"] = {"uri": str(tmp_path / "noise.jsonl")}
    assert main(["--config", str(write_config(tmp_path, config))]) == 0
    doc = json.loads((Path(config["output"]["uri"]) / "metrics.json").read_text())
    training = doc["training"]
    assert training["stoppedEarly"] is True
    assert training["steps"] < training["totalSteps"]
    history = training["history"]
    best = min(h["evalLoss"] for h in history)
    assert training["bestValue"] == pytest.approx(best)
    # The last `patience` evaluations did not beat the best one before them.
    assert all(h["evalLoss"] >= best for h in history[-2:])
    assert history[-1]["step"] == training["steps"]
    assert training["bestStep"] < training["steps"]
    assert "stopped early" in summary_of(config)["message"]
