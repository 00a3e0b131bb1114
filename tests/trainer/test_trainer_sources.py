"""Model and data URI kinds beyond plain paths: hf:// from an offline cache, object storage."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import fsspec  # type: ignore[import-untyped]
import pytest
from trainer_helpers import ConfigFactory, keyword_rows, summary_of, write_config, write_jsonl

from bespoke_trainer.__main__ import main

REPO = Path(__file__).resolve().parents[2]


def test_hf_uri_loads_offline_from_the_local_hub_cache(
    tmp_path: Path, make_config: ConfigFactory, tiny_bert: Path
) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--acme--tiny-bert"
    shutil.copytree(tiny_bert, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit, encoding="utf-8")
    config = make_config(
        model=tiny_bert,
        train=write_jsonl(tmp_path / "t.jsonl", keyword_rows(90, seed=1)),
        baseModel={"uri": "hf://acme/tiny-bert", "revision": "main"},
        training={"epochs": 1},
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "trainer"),
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(tmp_path / "hub"),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "bespoke_trainer", "--config", str(write_config(tmp_path, config))],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    meta = json.loads((Path(config["output"]["uri"]) / "bespoke-version.json").read_text())
    assert meta["baseModel"] == {"uri": "hf://acme/tiny-bert", "revision": "main"}


def test_object_storage_data_and_output(
    tmp_path: Path,
    make_config: ConfigFactory,
    tiny_bert: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # fsspec's in-memory store stands in for S3: the same fsspec calls, no network.
    fs = fsspec.filesystem("memory")
    local = write_jsonl(tmp_path / "t.jsonl", keyword_rows(90, seed=1))
    fs.pipe("/data/train.jsonl", local.read_bytes())
    monkeypatch.setenv("BESPOKE_CACHE_DIR", str(tmp_path / "cache"))
    config = make_config(
        model=tiny_bert,
        train=local,
        dataset={"train": {"uri": "memory://data/train.jsonl"}},
        training={"epochs": 1},
    )
    config["output"]["uri"] = "memory://bucket/versions/v1"
    try:
        assert main(["--config", str(write_config(tmp_path, config))]) == 0
        assert summary_of(config)["artifactUri"] == "memory://bucket/versions/v1"
        for name in (
            "COMPLETE",
            "metrics.json",
            "reference.parquet",
            "adapter/adapter_config.json",
        ):
            assert fs.exists(f"/bucket/versions/v1/{name}"), name
        # The data fingerprint hashes the bytes read from the store.
        fingerprint = json.loads(fs.cat("/bucket/versions/v1/bespoke-version.json"))
        assert fingerprint["dataFingerprint"] == summary_of(config)["dataFingerprint"]
    finally:
        fs.rm("/bucket", recursive=True)
        fs.rm("/data", recursive=True)
