"""Data-parallel training under torchrun (gloo on CPU here; NCCL on GPUs in test_trainer_gpu)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from trainer_helpers import ConfigFactory, keyword_rows, summary_of, write_config, write_jsonl

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pythonpath() -> str:
    """The trainer's sources first, then whatever the caller had (e.g. carried dependencies)."""
    return os.pathsep.join(p for p in (str(REPO / "trainer"), os.environ.get("PYTHONPATH")) if p)


def torchrun(config_path: Path, nproc: int) -> subprocess.CompletedProcess[str]:
    """Run the trainer under torchrun with `nproc` processes on this machine."""
    launcher = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert launcher, "torchrun is installed with torch"
    return subprocess.run(
        [
            launcher,
            f"--nproc_per_node={nproc}",
            f"--master_port={_free_port()}",
            "-m",
            "bespoke_trainer",
            "--config",
            str(config_path),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": _pythonpath(), "OMP_NUM_THREADS": "1"},
        timeout=600,
        check=False,
    )


@pytest.mark.slow
def test_two_process_ddp_splits_the_data_and_writes_one_version(
    tmp_path: Path, make_config: ConfigFactory, tiny_bert: Path
) -> None:
    config = make_config(
        model=tiny_bert,
        train=write_jsonl(tmp_path / "train.jsonl", keyword_rows(160, seed=6)),
        method={"type": "full"},
        training={"epochs": 2, "batchSize": 8, "learningRate": "1e-3"},
    )
    proc = torchrun(write_config(tmp_path, config), nproc=2)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = summary_of(config)
    assert summary["outcome"] == "Succeeded"
    doc = json.loads((Path(config["output"]["uri"]) / "metrics.json").read_text())
    # Each rank takes half of every epoch's shuffled order, so an epoch has half the steps.
    per_rank = doc["data"]["train"] // 2
    assert doc["training"]["totalSteps"] == 2 * -(-per_rank // 8)
    assert len(list(tmp_path.rglob("COMPLETE"))) == 1
