"""The trainer config: camelCase JSON, string decimals, and up-front combination checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bespoke_trainer.config import TrainerConfig, load_config, metric_higher_is_better
from bespoke_trainer.errors import InvalidConfigError

BASE = {
    "version": 3,
    "baseModel": {"uri": "hf://org/model", "revision": "abc123"},
    "task": "text-classification",
    "dataset": {"train": {"uri": "s3://bucket/train.jsonl"}},
    "output": {"uri": "/data/versions/v3"},
}


def _with(**changes: object) -> dict[str, object]:
    return {**BASE, **changes}


def test_defaults_mirror_the_api() -> None:
    config = TrainerConfig.model_validate(BASE)
    assert config.method.type == "lora"
    assert config.method.lora.r == 16
    assert config.method.lora.alpha == 32
    assert config.training.learning_rate == pytest.approx(2e-4)
    assert config.dataset.split.validation_fraction == pytest.approx(0.1)
    assert config.output.termination_log_path == "/dev/termination-log"
    assert config.training.early_stopping.metric is None


def test_string_decimals_are_parsed() -> None:
    config = TrainerConfig.model_validate(
        _with(
            training={"learningRate": "3e-5", "warmupRatio": "0.1", "weightDecay": "0.01"},
            method={"type": "lora", "lora": {"dropout": "0.2"}},
        )
    )
    assert config.training.learning_rate == pytest.approx(3e-5)
    assert config.training.warmup_ratio == pytest.approx(0.1)
    assert config.method.lora.dropout == pytest.approx(0.2)


def test_unknown_kubernetes_fields_are_ignored() -> None:
    config = TrainerConfig.model_validate(
        _with(training={"resources": {"gpus": 1}, "nodeSelector": {"a": "b"}, "epochs": 1})
    )
    assert config.training.epochs == 1


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"training": {"learningRate": "fast"}}, "`training.learningRate`"),
        ({"training": {"earlyStopping": {"metric": "perplexity"}}}, "earlyStopping.metric"),
        ({"evaluation": {"metrics": ["bleu"]}}, "`evaluation.metrics`"),
        ({"training": {"mitigateBias": True}}, "`dataset.sensitiveColumn`"),
        ({"training": {"warmStart": True}}, "`warmStartUri`"),
        ({"baseModel": {"uri": "hf://org/m", "trustRemoteCode": True}}, "revision"),
        (
            {
                "dataset": {
                    "train": {"uri": "t.jsonl"},
                    "split": {"validationFraction": "0.5", "testFraction": "0.45"},
                }
            },
            "leave data",
        ),
    ],
)
def test_bad_combinations_name_the_field(
    tmp_path: Path, changes: dict[str, object], fragment: str
) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(_with(**changes)), encoding="utf-8")
    with pytest.raises(InvalidConfigError) as info:
        load_config(path)
    assert fragment in str(info.value)
    assert info.value.exit_code == 2
    assert info.value.reason == "InvalidConfig"


def test_not_json_is_invalid_config(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(InvalidConfigError, match="not valid JSON"):
        load_config(path)


def test_metric_direction() -> None:
    assert metric_higher_is_better("accuracy")
    assert not metric_higher_is_better("evalLoss")
    assert not metric_higher_is_better("demographicParityDifference")
