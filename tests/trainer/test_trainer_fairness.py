"""Fairness audit on a planted-bias dataset, and mitigation by group × label reweighting."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from trainer_helpers import ConfigFactory, planted_bias_rows, summary_of, write_config, write_jsonl

from bespoke_trainer.__main__ import main
from bespoke_trainer.recipe import group_label_weights


def test_reweighting_makes_group_and_label_independent() -> None:
    frame = pd.DataFrame(planted_bias_rows(400, seed=1))
    w = group_label_weights(frame)
    weighted = frame.assign(w=w).groupby(["group", "label"])["w"].sum() / w.sum()
    p_group = frame["group"].value_counts(normalize=True)
    p_label = frame["label"].value_counts(normalize=True)
    for (g, y), share in weighted.items():
        assert share == pytest.approx(p_group[g] * p_label[y])
    assert w.sum() == pytest.approx(len(frame), rel=1e-5)


def test_planted_bias_is_found_and_reweighting_reduces_it(
    tmp_path: Path, make_config: ConfigFactory, tiny_bert: Path
) -> None:
    train = write_jsonl(tmp_path / "biased.jsonl", planted_bias_rows(600, seed=3))
    runs = {}
    for mitigate in (False, True):
        config = make_config(
            model=tiny_bert,
            train=train,
            output=tmp_path / ("mitigated" if mitigate else "plain") / "v1",
            method={"type": "full"},
            training={
                "epochs": 3,
                "batchSize": 16,
                "learningRate": "2e-3",
                "mitigateBias": mitigate,
            },
            dataset={"train": {"uri": str(train)}, "sensitiveColumn": "group"},
            evaluation={"metrics": ["accuracy", "demographicParityDifference"]},
        )
        assert main(["--config", str(write_config(tmp_path, config, f"{mitigate}.json"))]) == 0
        runs[mitigate] = summary_of(config)
        doc = json.loads((Path(config["output"]["uri"]) / "metrics.json").read_text())
        assert set(doc["fairness"]["perGroup"]) == {"alpha", "beta"}
        assert doc["training"]["mitigateBias"] is mitigate
    plain = runs[False]["fairness"]["demographicParityDifference"]
    mitigated = runs[True]["fairness"]["demographicParityDifference"]
    print(f"demographicParityDifference: plain {plain:.3f}, reweighted {mitigated:.3f}")
    assert plain > 0.2
    assert mitigated < plain - 0.1
    assert set(runs[True]["fairness"]) == {
        "demographicParityDifference",
        "equalizedOddsDifference",
        "worstGroupAccuracy",
    }
    assert np.isfinite(runs[True]["fairness"]["worstGroupAccuracy"])
