"""Data loading, validation failures, split, fingerprint and augmentation (no model needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from trainer_helpers import sentiment_rows, write_jsonl

from bespoke_trainer.config import TrainerConfig
from bespoke_trainer.data import augment, prepare_data
from bespoke_trainer.errors import InvalidDataError


def _config(train: Path | str, **dataset: Any) -> TrainerConfig:
    return TrainerConfig.model_validate(
        {
            "version": 1,
            "baseModel": {"uri": "/models/m"},
            "task": "text-classification",
            "dataset": {"train": {"uri": str(train)}, **dataset},
            "output": {"uri": "/tmp/unused/v1"},
        }
    )


def test_seeded_stratified_split_keeps_every_row_once(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "t.jsonl", sentiment_rows())
    a = prepare_data(_config(train), tmp_path)
    b = prepare_data(_config(train), tmp_path)
    pd.testing.assert_frame_equal(a.test, b.test)
    assert len(a.train) + len(a.validation) + len(a.test) == 450
    assert set(a.test["label"].value_counts()) == {15}  # 10% of 150 per class
    assert not set(a.test["text"]) & set(a.train["text"])
    other = prepare_data(_config(train, split={"seed": 1}), tmp_path)
    assert set(other.test["text"]) != set(a.test["text"])


def test_fingerprint_is_the_inputs_hash(tmp_path: Path) -> None:
    rows = sentiment_rows()
    train = write_jsonl(tmp_path / "t.jsonl", rows)
    first = prepare_data(_config(train), tmp_path).fingerprint
    assert first == prepare_data(_config(train), tmp_path).fingerprint
    write_jsonl(train, rows[:-1])
    assert prepare_data(_config(train), tmp_path).fingerprint != first
    assert first.startswith("sha256:")
    assert len(first) == 7 + 64


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_csv_and_parquet_read_like_jsonl(tmp_path: Path, fmt: str) -> None:
    frame = pd.DataFrame(sentiment_rows())
    path = tmp_path / f"t.{fmt}"
    frame.to_csv(path, index=False) if fmt == "csv" else frame.to_parquet(path)
    data = prepare_data(_config(path), tmp_path)
    assert len(data.train) + len(data.validation) + len(data.test) == 450
    assert data.labels == ["negative", "neutral", "positive"]


def test_pvc_uri_resolves_under_the_mount_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_jsonl(tmp_path / "claim" / "data" / "t.jsonl", sentiment_rows())
    monkeypatch.setenv("BESPOKE_PVC_ROOT", str(tmp_path))
    data = prepare_data(_config("pvc://claim/data/t.jsonl"), tmp_path)
    assert len(data.train) > 300


def _rows_with(**change: Any) -> list[dict[str, Any]]:
    rows = sentiment_rows()
    rows[5] = {**rows[5], **change}
    return rows


@pytest.mark.parametrize(
    ("rows", "dataset", "fragment"),
    [
        ([{"review": "x", "label": "a"}] * 10, {}, "no column 'text'"),
        (_rows_with(text=None), {}, "non-text or empty value in column 'text'"),
        (_rows_with(text=42), {}, "non-text"),
        (_rows_with(text="   "), {}, "non-text or empty"),
        (_rows_with(label=None), {}, "has no value in 'label'"),
        ([*sentiment_rows(), {"text": "rare one", "label": "rare"}], {}, "class 'rare' has"),
    ],
)
def test_invalid_training_data_fails_with_one_line(
    tmp_path: Path, rows: list[dict[str, Any]], dataset: dict[str, Any], fragment: str
) -> None:
    train = write_jsonl(tmp_path / "t.jsonl", rows)
    with pytest.raises(InvalidDataError) as info:
        prepare_data(_config(train, **dataset), tmp_path)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_empty_file_is_invalid(tmp_path: Path) -> None:
    train = tmp_path / "t.jsonl"
    train.write_text("\n", encoding="utf-8")
    with pytest.raises(InvalidDataError, match="is empty"):
        prepare_data(_config(train), tmp_path)


def test_csv_named_jsonl_says_so_and_how_to_fix_it(tmp_path: Path) -> None:
    train = tmp_path / "t.jsonl"
    train.write_text("text,label\ngreat film,positive\n", encoding="utf-8")
    with pytest.raises(InvalidDataError) as info:
        prepare_data(_config(train), tmp_path)
    message = str(info.value)
    assert "first line is not a JSON object: 'text,label' (it looks like CSV)" in message
    assert "set `format` on the source" in message
    assert "\n" not in message


def test_unknown_label_in_validation_data(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "t.jsonl", sentiment_rows())
    val = write_jsonl(tmp_path / "v.jsonl", [{"text": "brand new text", "label": "sarcastic"}])
    with pytest.raises(InvalidDataError, match="label 'sarcastic' that train data does not have"):
        prepare_data(_config(train, validation={"uri": str(val)}), tmp_path)


def test_leakage_between_train_and_test(tmp_path: Path) -> None:
    rows = sentiment_rows()
    train = write_jsonl(tmp_path / "t.jsonl", rows)
    # A fifth of the test set copied from train, with different casing and spacing.
    test_rows = [{**r, "text": "  " + r["text"].upper()} for r in rows[:10]]
    test_rows += [{"text": f"fresh text number {i}", "label": "neutral"} for i in range(40)]
    test = write_jsonl(tmp_path / "test.jsonl", test_rows)
    # An explicit validation source means nothing is split off train.
    val = write_jsonl(tmp_path / "v.jsonl", [{"text": "unseen words", "label": "neutral"}])
    sources = {"test": {"uri": str(test)}, "validation": {"uri": str(val)}}
    with pytest.raises(InvalidDataError, match="20% of test texts also appear in train"):
        prepare_data(_config(train, **sources), tmp_path)
    ok = prepare_data(_config(train, **sources, maxOverlapFraction="0.25"), tmp_path)
    assert len(ok.test) == 50


def test_augmentation_is_seeded_and_keeps_labels(tmp_path: Path) -> None:
    frame = pd.DataFrame(sentiment_rows(20))
    cfg = _config("unused", augmentation={"enabled": True, "copies": 2, "probability": "0.3"})
    settings = cfg.dataset.augmentation
    a, b = augment(frame, settings, 3), augment(frame, settings, 3)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 3 * len(frame)
    extra = a.iloc[len(frame) :]
    assert (extra["label"].to_numpy() == frame["label"].repeat(2).to_numpy()).all()
    changed = (extra["text"].to_numpy() != frame["text"].repeat(2).to_numpy()).mean()
    assert changed > 0.5
    # In-class insertion only borrows words from the same class.
    positive_words = {w for t in frame[frame.label == "positive"].text for w in t.split()}
    inserted = augment(
        frame[frame.label == "positive"],
        settings.model_copy(update={"operations": ["insertion"]}),
        3,
    )
    assert {w for t in inserted.text for w in t.split()} <= positive_words


def test_augmentation_only_touches_train(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "t.jsonl", sentiment_rows())
    plain = prepare_data(_config(train), tmp_path)
    augmented = prepare_data(_config(train, augmentation={"enabled": True}), tmp_path)
    assert len(augmented.train) == 2 * len(plain.train)
    pd.testing.assert_frame_equal(plain.test, augmented.test)


def test_extra_train_sources_are_added_and_fingerprinted(tmp_path: Path) -> None:
    rows = sentiment_rows()
    train = write_jsonl(tmp_path / "t.jsonl", rows[:300])
    drift = write_jsonl(tmp_path / "drift.jsonl", rows[300:])
    base = prepare_data(_config(train), tmp_path)
    more = prepare_data(_config(train, extraTrain=[{"uri": str(drift)}]), tmp_path)
    total = len(more.train) + len(more.validation) + len(more.test)
    assert total == 450
    assert len(more.train) > len(base.train)
    assert more.fingerprint != base.fingerprint
