"""Load, validate, split, fingerprint and augment the training data."""

from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bespoke_trainer.config import AugmentationConfig, DataSource, TrainerConfig
from bespoke_trainer.errors import InvalidConfigError, InvalidDataError, StorageError
from bespoke_trainer.uris import local_path

__all__ = ["PreparedData", "augment", "prepare_data", "read_source"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedData:
    """Validated frames with canonical columns.

    Classification frames have `text`, `label` (str) and, with a sensitive column, `group`;
    causal-LM frames have `prompt` and `response`.
    """

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    labels: list[str]
    fingerprint: str


def _format_of(source: DataSource, path: Path) -> str:
    if source.format:
        return source.format
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("jsonl", "ndjson"):
        return "jsonl"
    if suffix in ("csv", "parquet"):
        return suffix
    raise InvalidConfigError(
        f"cannot infer the format of {source.uri}: set `format` to jsonl, csv or parquet"
    )


def read_source(source: DataSource, role: str, cache_dir: Path) -> tuple[pd.DataFrame, bytes]:
    """Read one data file; return the frame and the raw bytes (for the fingerprint)."""
    try:
        path = local_path(source.uri, cache_dir=cache_dir)
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise InvalidDataError(f"{role} data {source.uri} does not exist") from exc
    except (OSError, ValueError) as exc:
        raise StorageError(f"cannot read {role} data {source.uri}: {exc}") from exc
    fmt = _format_of(source, path)
    if not raw.strip():
        raise InvalidDataError(f"{role} data {source.uri} is empty")
    try:
        if fmt == "jsonl":
            frame = pd.read_json(path, lines=True, dtype=False)
        elif fmt == "csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        else:
            frame = pd.read_parquet(path)
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        first = raw.lstrip()[:1]
        if fmt == "jsonl" and first not in (b"{", b"["):
            line = raw.lstrip().split(b"\n", 1)[0][:80].decode("utf-8", "replace")
            raise InvalidDataError(
                f"{role} data {source.uri} is read as JSON Lines but its first line is not a "
                f"JSON object: {line!r}"
                + (" (it looks like CSV)" if "," in line else "")
                + " — set `format` on the source (csv or parquet), or give the file the "
                "extension of its format"
            ) from exc
        raise InvalidDataError(f"{role} data {source.uri} is not valid {fmt}: {exc}") from exc
    if frame.empty:
        raise InvalidDataError(f"{role} data {source.uri} has no rows")
    return frame, raw


def _canonical(frame: pd.DataFrame, config: TrainerConfig, role: str) -> pd.DataFrame:
    cols = config.dataset.columns
    if config.task == "text-classification":
        wanted = {"text": cols.text, "label": cols.label}
        if config.dataset.sensitive_column:
            wanted["group"] = config.dataset.sensitive_column
    else:
        wanted = {"prompt": cols.prompt, "response": cols.response}
    missing = [src for src in wanted.values() if src not in frame.columns]
    if missing:
        raise InvalidDataError(
            f"{role} data has no column {', '.join(repr(m) for m in missing)} "
            f"(columns: {', '.join(map(str, frame.columns))}); set `dataset.columns`"
        )
    out = pd.DataFrame({dst: frame[src] for dst, src in wanted.items()})
    text_cols = ["text"] if "text" in out else ["prompt", "response"]
    for col in text_cols:
        bad = [i for i, v in enumerate(out[col]) if not isinstance(v, str) or not v.strip()]
        if bad:
            raise InvalidDataError(
                f"{role} data row {bad[0]} has a non-text or empty value in column "
                f"{wanted[col]!r} ({len(bad)} such rows)"
            )
    for col in ("label", "group"):
        if col in out:
            nulls = out[col].isna()
            if nulls.any():
                first = int(np.flatnonzero(nulls.to_numpy())[0])
                raise InvalidDataError(f"{role} data row {first} has no value in {wanted[col]!r}")
            out[col] = out[col].map(_label_str)
    return out.reset_index(drop=True)


def _label_str(value: object) -> str:
    # 1 and 1.0 and "1" from jsonl/csv/parquet must name the same class.
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _split(
    frame: pd.DataFrame, fraction: float, seed: int, stratify: bool
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split off `fraction` of the rows (per label when stratified); return (rest, held)."""
    if fraction <= 0:
        return frame, frame.iloc[0:0]
    rng = np.random.default_rng(seed)
    groups = frame.groupby("label").indices.values() if stratify else [np.arange(len(frame))]
    held: list[int] = []
    for group in groups:
        idx = rng.permutation(np.asarray(group))
        n = round(len(idx) * fraction)
        held.extend(int(i) for i in idx[:n])
    held_set = set(held)
    rest = [i for i in range(len(frame)) if i not in held_set]
    return frame.iloc[rest].reset_index(drop=True), frame.iloc[sorted(held)].reset_index(drop=True)


def _key(frame: pd.DataFrame) -> pd.Series:
    col = frame["text"] if "text" in frame else frame["prompt"]
    return col.str.strip().str.lower()


def prepare_data(config: TrainerConfig, cache_dir: Path) -> PreparedData:
    """Load every source, validate it and produce train/validation/test frames."""
    ds = config.dataset
    classification = config.task == "text-classification"
    digest = hashlib.sha256()

    def load(source: DataSource, role: str) -> pd.DataFrame:
        frame, raw = read_source(source, role, cache_dir)
        digest.update(f"{role}\0{len(raw)}\0".encode())
        digest.update(raw)
        return _canonical(frame, config, role)

    train = pd.concat(
        [load(ds.train, "train")]
        + [load(s, f"extraTrain[{i}]") for i, s in enumerate(ds.extra_train)],
        ignore_index=True,
    )
    validation = load(ds.validation, "validation") if ds.validation else None
    test = load(ds.test, "test") if ds.test else None

    before = len(train)
    train = train.drop_duplicates().reset_index(drop=True)
    if len(train) < before:
        log.info("Dropped %d duplicate training rows", before - len(train))

    seed = ds.split.seed
    if test is None:
        train, test = _split(train, ds.split.test_fraction, seed, classification)
    if validation is None:
        train, validation = _split(train, ds.split.validation_fraction, seed + 1, classification)
    if validation.empty and test.empty:
        raise InvalidConfigError(
            "no held-out data: give `dataset.validation`/`dataset.test` or a split fraction > 0"
        )
    # One held-out set serves both roles when the other is absent.
    if validation.empty:
        validation = test
    if test.empty:
        test = validation

    labels: list[str] = []
    if classification:
        labels = sorted(train["label"].unique())
        counts = train["label"].value_counts()
        few = counts[counts < ds.min_examples_per_class]
        if len(labels) < 2:
            raise InvalidDataError(f"train data has {len(labels)} class; at least 2 are needed")
        if not few.empty:
            name, n = str(few.index[0]), int(few.iloc[0])
            raise InvalidDataError(
                f"class {name!r} has {n} training examples; at least "
                f"{ds.min_examples_per_class} are needed — add examples of that class to the "
                "training data, or remove its rows"
            )
        for role, frame in (("validation", validation), ("test", test)):
            unknown = sorted(set(frame["label"]) - set(labels))
            if unknown:
                raise InvalidDataError(
                    f"{role} data has label {unknown[0]!r} that train data does not have"
                )
    train_keys = set(_key(train))
    for role, frame in (("validation", validation), ("test", test)):
        overlap = float(_key(frame).isin(train_keys).mean())
        if overlap > ds.max_overlap_fraction:
            raise InvalidDataError(
                f"{overlap:.0%} of {role} texts also appear in train (leakage); the limit is "
                f"{ds.max_overlap_fraction:.0%} — remove the shared texts from one of the files, "
                f"or omit `dataset.{role}` to split it from train"
            )
    if classification and ds.augmentation.enabled:
        train = augment(train, ds.augmentation, seed)
    log.info(
        "Data ready: %d train, %d validation, %d test rows%s",
        len(train),
        len(validation),
        len(test),
        f", labels {labels}" if labels else "",
    )
    return PreparedData(
        train=train,
        validation=validation,
        test=test,
        labels=labels,
        fingerprint=f"sha256:{digest.hexdigest()}",
    )


def augment(train: pd.DataFrame, settings: AugmentationConfig, seed: int) -> pd.DataFrame:
    """Add `copies` perturbed copies of every row (token deletion, swap, in-class insertion)."""
    rng = random.Random(seed)
    vocab_by_label = {
        label: [w for t in group["text"] for w in t.split()]
        for label, group in train.groupby("label")
    }
    rows = []
    for record in train.to_dict(orient="records"):
        text, label = str(record["text"]), str(record["label"])
        for _ in range(settings.copies):
            op = rng.choice(settings.operations)
            words = _perturb(text.split(), op, settings.probability, vocab_by_label[label], rng)
            rows.append({**record, "text": " ".join(words) if words else text})
    extra = pd.DataFrame(rows, columns=train.columns)
    log.info("Augmentation added %d rows", len(extra))
    return pd.concat([train, extra], ignore_index=True)


def _perturb(words: list[str], op: str, p: float, pool: list[str], rng: random.Random) -> list[str]:
    n = max(1, round(len(words) * p))
    if op == "deletion" and len(words) > 1:
        keep = [w for w in words if rng.random() >= p]
        return keep or [rng.choice(words)]
    if op == "swap" and len(words) > 1:
        words = list(words)
        for _ in range(n):
            i, j = rng.randrange(len(words)), rng.randrange(len(words))
            words[i], words[j] = words[j], words[i]
        return words
    if op == "insertion" and pool:
        words = list(words)
        for _ in range(n):
            words.insert(rng.randrange(len(words) + 1), rng.choice(pool))
        return words
    return words
