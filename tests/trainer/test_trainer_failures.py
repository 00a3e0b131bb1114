"""Every failure class ends with its own exit code, reason and summary, and nothing complete."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from huggingface_hub import constants as hub_constants
from trainer_helpers import ConfigFactory, keyword_rows, summary_of, write_config, write_jsonl

from bespoke_trainer import loop
from bespoke_trainer.__main__ import main
from bespoke_trainer.errors import OOM_HINT

REPO = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, config: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    code = main(["--config", str(write_config(tmp_path, config))])
    return code, summary_of(config)


def _assert_failed(summary: dict[str, Any], code: int, reason: str, exit_code: int) -> None:
    assert code == exit_code
    assert summary["outcome"] == "Failed"
    assert summary["reason"] == reason
    assert summary["exitCode"] == exit_code
    assert summary["message"]
    assert "\n" not in summary["message"]


@pytest.fixture
def train(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "train.jsonl", keyword_rows(90, seed=4))


def test_invalid_config_exits_2_through_the_real_entry_point(tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"version": 1, "task": "translation"}), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO / "trainer")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bespoke_trainer",
            "--config",
            str(path),
            "--termination-log",
            str(log),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 2
    summary = json.loads(log.read_text())
    _assert_failed(summary, proc.returncode, "InvalidConfig", 2)
    assert "`task`" in summary["message"]
    assert "`baseModel`" in summary["message"]
    assert "Training failed (InvalidConfig)" in proc.stdout


def test_invalid_data_exits_3(tmp_path: Path, make_config: ConfigFactory, tiny_bert: Path) -> None:
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"body": "x", "label": "a"}] * 20)
    config = make_config(model=tiny_bert, train=bad)
    code, summary = _run(tmp_path, config)
    _assert_failed(summary, code, "InvalidData", 3)
    assert "no column 'text'" in summary["message"]


def test_a_model_that_cannot_be_loaded_exits_4(
    tmp_path: Path, make_config: ConfigFactory, train: Path
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "bert"}', encoding="utf-8")  # no weights
    config = make_config(model=model, train=train)
    code, summary = _run(tmp_path, config)
    _assert_failed(summary, code, "ModelLoadFailed", 4)
    assert str(model) in summary["message"]


def test_a_model_that_is_not_there_exits_7(
    tmp_path: Path, make_config: ConfigFactory, train: Path
) -> None:
    model = tmp_path / "no-such-model"
    code, summary = _run(tmp_path, make_config(model=model, train=train))
    _assert_failed(summary, code, "ModelNotFound", 7)
    assert str(model) in summary["message"]


def test_a_hub_model_missing_from_the_offline_cache_exits_7(
    tmp_path: Path, make_config: ConfigFactory, train: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Offline (as every test run here is), the cache is all there is: not there means not found.
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    config = make_config(model=tmp_path, train=train)
    config["baseModel"] = {"uri": "hf://no-such-org/no-such-model"}
    code, summary = _run(tmp_path, config)
    _assert_failed(summary, code, "ModelNotFound", 7)
    assert "HF_HUB_OFFLINE" in summary["message"]


def _raise_cuda_oom_mock(*args: Any, **kwargs: Any) -> Any:
    # A real CUDA OOM needs a GPU; this raises the exact exception type torch raises there.
    raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_out_of_memory_exits_5_with_a_hint(
    tmp_path: Path,
    make_config: ConfigFactory,
    tiny_bert: Path,
    train: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(loop, "batch_loss", _raise_cuda_oom_mock)
    config = make_config(model=tiny_bert, train=train)
    code, summary = _run(tmp_path, config)
    _assert_failed(summary, code, "OutOfMemory", 5)
    assert OOM_HINT in summary["message"]
    assert not Path(config["output"]["uri"]).exists()


def test_host_allocator_failure_is_out_of_memory(
    tmp_path: Path,
    make_config: ConfigFactory,
    tiny_bert: Path,
    train: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def cpu_oom(*args: Any, **kwargs: Any) -> Any:
        # The message torch's CPU allocator raises when the host is out of memory.
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: "
            "can't allocate memory: you tried to allocate 1099511627776 bytes"
        )

    monkeypatch.setattr(loop, "batch_loss", cpu_oom)
    code, summary = _run(tmp_path, make_config(model=tiny_bert, train=train))
    _assert_failed(summary, code, "OutOfMemory", 5)


def test_storage_failure_exits_6_and_marks_nothing_complete(
    tmp_path: Path, make_config: ConfigFactory, tiny_bert: Path, train: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the storage root should be", encoding="utf-8")
    config = make_config(model=tiny_bert, train=train, output=blocker / "versions" / "v1")
    code, summary = _run(tmp_path, config)
    _assert_failed(summary, code, "StorageFailed", 6)
    assert not list(tmp_path.rglob("COMPLETE"))


def test_unexpected_error_exits_1(
    tmp_path: Path,
    make_config: ConfigFactory,
    tiny_bert: Path,
    train: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("planted bug")

    monkeypatch.setattr(loop, "batch_loss", broken)
    code, summary = _run(tmp_path, make_config(model=tiny_bert, train=train))
    _assert_failed(summary, code, "InternalError", 1)
    assert "ZeroDivisionError: planted bug" in summary["message"]
