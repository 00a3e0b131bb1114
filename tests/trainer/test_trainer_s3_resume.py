"""s3:// output: a preempted trainer resumes on a fresh pod from the checkpoint it mirrored.

A real S3 API (moto in server mode, over HTTP on loopback) stands in for the bucket; the trainer
reaches it through s3fs exactly as in a pod, with the endpoint from `AWS_ENDPOINT_URL`. The
"new pod" is a new process with an empty local cache: only the bucket carries the checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from trainer_helpers import ConfigFactory, keyword_rows, write_config, write_jsonl

from bespoke_trainer.checkpoint_mirror import CheckpointMirror

moto_server = pytest.importorskip("moto.server")
s3fs = pytest.importorskip("s3fs")

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A moto S3 server with a new bucket (`BUCKET`); the environment a trainer pod would get.

    moto keeps its buckets per process, so each test gets a bucket of its own.
    """
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    s3fs.S3FileSystem.clear_instance_cache()
    bucket = f"artifacts-{uuid.uuid4().hex[:8]}"
    s3fs.S3FileSystem().mkdir(bucket)
    try:
        yield {**env, "BUCKET": bucket}
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        server.stop()


def test_a_preempted_run_resumes_on_a_new_pod_from_its_mirrored_checkpoint(
    tmp_path: Path, make_config: ConfigFactory, tiny_bert: Path, s3_env: dict[str, str]
) -> None:
    bucket = s3_env["BUCKET"]
    train = write_jsonl(tmp_path / "train.jsonl", keyword_rows(300, seed=2))
    uri = f"s3://{bucket}/sentiment/versions/v1"
    config = make_config(
        model=tiny_bert,
        train=train,
        method={"type": "full"},
        training={"epochs": 3, "batchSize": 8, "learningRate": "1e-3", "checkpointEverySteps": 10},
    )
    config["output"]["uri"] = uri
    config["trainingHash"] = "a" * 64
    config_path = write_config(tmp_path, config)

    def pod(cache: Path) -> subprocess.Popen[str]:
        env = {
            **os.environ,
            **s3_env,
            "PYTHONPATH": str(REPO / "trainer"),
            "BESPOKE_CACHE_DIR": str(cache),
        }
        return subprocess.Popen(
            [sys.executable, "-m", "bespoke_trainer", "--config", str(config_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )

    first = pod(tmp_path / "node-a")
    assert first.stdout is not None
    log = []
    for line in first.stdout:
        log.append(line)
        if "Mirrored checkpoint step-00000020" in line:
            first.send_signal(signal.SIGKILL)  # preempted: no chance to clean up
            break
    first.wait(timeout=120)
    first.stdout.close()
    assert first.returncode == -signal.SIGKILL, "".join(log)
    shutil.rmtree(tmp_path / "node-a")  # the node is gone with its disk

    fs = s3fs.S3FileSystem()
    partial = f"{bucket}/sentiment/versions/.v1.partial"
    assert fs.exists(f"{partial}/checkpoints/step-00000020/state.json")
    assert not fs.exists(f"{bucket}/sentiment/versions/v1/COMPLETE")

    second = pod(tmp_path / "node-b")
    output, _ = second.communicate(timeout=600)
    assert second.returncode == 0, output
    assert "Resuming from mirrored checkpoint step-000000" in output
    fs.invalidate_cache()
    metrics = json.loads(fs.cat_file(f"{bucket}/sentiment/versions/v1/metrics.json"))
    assert metrics["training"]["resumedFromStep"] >= 20
    assert metrics["training"]["resumedFromStep"] < metrics["training"]["totalSteps"]
    assert fs.exists(f"{bucket}/sentiment/versions/v1/COMPLETE")
    # A complete version leaves nothing to resume from.
    assert not fs.exists(partial)


def test_mirrored_checkpoints_of_another_spec_or_cut_short_are_not_resumed(
    tmp_path: Path, s3_env: dict[str, str]
) -> None:
    bucket = s3_env["BUCKET"]
    fs = s3fs.S3FileSystem()
    root = f"{bucket}/c/versions/.v1.partial"
    fs.pipe_file(f"{root}/TRAINING_HASH", b"b" * 64 + b"\n")
    fs.pipe_file(f"{root}/checkpoints/step-00000010/state.json", b"{}")
    uri = f"s3://{bucket}/c/versions/v1"

    mirror = CheckpointMirror.for_version(uri, tmp_path / "ckpt", "a" * 64)
    assert mirror is not None
    assert mirror.pull() is None
    fs.invalidate_cache()
    assert not fs.exists(f"{root}/checkpoints")
    assert fs.cat_file(f"{root}/TRAINING_HASH").decode().strip() == "a" * 64

    # An upload cut short (no state.json, written last) is not a checkpoint.
    fs.pipe_file(f"{root}/checkpoints/step-00000020/trainable.safetensors", b"partial")
    assert mirror.pull() is None
    fs.pipe_file(f"{root}/checkpoints/step-00000010/trainable.safetensors", b"w")
    fs.pipe_file(f"{root}/checkpoints/step-00000010/state.json", b"{}")
    pulled = mirror.pull()
    assert pulled == tmp_path / "ckpt" / "step-00000010"
    assert (pulled / "state.json").read_bytes() == b"{}"
    # A mounted location needs no mirror: its checkpoints are in storage already.
    assert CheckpointMirror.for_version(str(tmp_path / "v1"), tmp_path, None) is None
