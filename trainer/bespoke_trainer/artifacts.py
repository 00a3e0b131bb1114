"""The version directory contract: staging, atomic completion, metadata, reference data, card."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from bespoke_trainer.config import TrainerConfig
from bespoke_trainer.errors import StorageError
from bespoke_trainer.uris import is_remote, local_path

__all__ = [
    "COMPLETE",
    "TRAINING_HASH",
    "VersionPaths",
    "another_spec",
    "claim_staging",
    "finalize",
    "recorded_training_hash",
    "version_paths",
    "vocabulary",
    "write_json",
]

log = logging.getLogger(__name__)

COMPLETE = "COMPLETE"
#: The training hash of the spec a version directory (staged or final) was trained from.
TRAINING_HASH = "TRAINING_HASH"
VOCABULARY_SIZE = 20_000


class VersionPaths:
    """Where a version is staged (and checkpointed) and where it ends up."""

    def __init__(self, final_uri: str, final: Path | None, staging: Path) -> None:
        self.final_uri = final_uri
        self.final = final
        self.staging = staging

    @property
    def checkpoints(self) -> Path:
        """Checkpoints live in the staging dir so a restarted pod finds them."""
        return self.staging / "checkpoints"

    def is_complete(self) -> bool:
        """Whether the final version already exists and is finished."""
        return self.final is not None and (self.final / COMPLETE).exists()


def version_paths(config: TrainerConfig, cache_dir: Path) -> VersionPaths:
    """Resolve the output URI; object storage is staged locally and uploaded at the end."""
    uri = config.output.uri.rstrip("/")
    if is_remote(uri):
        staging = cache_dir / "staging" / Path(uri).name
        return VersionPaths(uri, None, staging)
    final = local_path(uri)
    return VersionPaths(uri, final, final.parent / f".{final.name}.partial")


def recorded_training_hash(directory: Path) -> str | None:
    """The training hash a version directory records, if it records one."""
    try:
        return (directory / TRAINING_HASH).read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


def another_spec(directory: Path, training_hash: str | None) -> str | None:
    """The hash a version directory records when it was made from another spec, else None.

    Nothing to compare (no hash given, or none recorded) counts as the same spec.
    """
    found = recorded_training_hash(directory)
    if training_hash is None or found is None or found == training_hash:
        return None
    return found


def claim_staging(paths: VersionPaths, training_hash: str | None) -> None:
    """Makes the staging dir this version's: checkpoints of another spec are discarded.

    The same version number can come back with another spec (a customization deleted and
    created again over the same storage); resuming from its checkpoints would train a mix.
    """
    found = another_spec(paths.staging, training_hash)
    if found is not None:
        log.warning(
            "Discarding %s: its checkpoints were made from another spec (training hash %s…)",
            paths.staging,
            found[:12],
        )
        shutil.rmtree(paths.staging)
    paths.checkpoints.mkdir(parents=True, exist_ok=True)
    if training_hash is not None:
        (paths.staging / TRAINING_HASH).write_text(training_hash + "\n", encoding="utf-8")


def write_json(path: Path, data: Any) -> None:
    """Write JSON through a temporary file so readers never see half a document."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=float), encoding="utf-8")
    os.replace(tmp, path)


def vocabulary(texts: Iterable[str], limit: int = VOCABULARY_SIZE) -> list[str]:
    """Lowercase words, most frequent first (ties broken alphabetically for stability)."""
    counts = Counter(w for t in texts for w in re.findall(r"\w+", t.lower()))
    return [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]


def write_reference(staging: Path, reference: pd.DataFrame) -> None:
    """`reference.parquet`: held-out inputs with predictions, for the drift monitor."""
    reference.to_parquet(staging / "reference.parquet", index=False)


def finalize(paths: VersionPaths) -> None:
    """Move the staged version into place, then write the completion marker last."""
    try:
        if paths.final is not None:
            if paths.final.exists():
                raise StorageError(f"{paths.final} already exists and is not this run's")
            os.replace(paths.staging, paths.final)
            _touch_complete(paths.final)
        else:
            _upload(paths)
    except OSError as exc:
        raise StorageError(f"cannot complete version at {paths.final_uri}: {exc}") from exc
    log.info("Version complete at %s", paths.final_uri)


def _touch_complete(directory: Path) -> None:
    stamp = datetime.now(UTC).isoformat()
    with open(directory / COMPLETE, "w", encoding="utf-8") as fh:
        fh.write(stamp + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _upload(paths: VersionPaths) -> None:
    import fsspec

    fs, root = fsspec.core.url_to_fs(paths.final_uri)
    if fs.exists(f"{root}/{COMPLETE}"):
        raise StorageError(f"{paths.final_uri} already exists and is not this run's")
    for f in sorted(paths.staging.rglob("*")):
        if f.is_file():
            fs.put_file(str(f), f"{root}/{f.relative_to(paths.staging).as_posix()}")
    _touch_complete(paths.staging)
    fs.put_file(str(paths.staging / COMPLETE), f"{root}/{COMPLETE}")
    shutil.rmtree(paths.staging, ignore_errors=True)


def version_metadata(config: TrainerConfig, labels: list[str], fingerprint: str) -> dict[str, Any]:
    """`bespoke-version.json`: what serving needs to rebuild the model."""
    return {
        "version": config.version,
        "task": config.task,
        "method": config.method.type,
        "baseModel": {"uri": config.base_model.uri, "revision": config.base_model.revision},
        "labels": labels if config.task == "text-classification" else [],
        "maxSequenceLength": config.training.max_sequence_length,
        "dataFingerprint": fingerprint,
        "createdAt": datetime.now(UTC).isoformat(),
    }


def model_card(config: TrainerConfig, doc: dict[str, Any]) -> str:
    """A short, human-readable record of how this version was made and how it scored."""
    t, m = config.training, config.method
    lines = [
        f"# Model card: version {config.version}",
        "",
        f"- Task: {config.task}",
        f"- Base model: {config.base_model.uri} "
        f"(revision {config.base_model.revision or 'unpinned'})",
        f"- Data fingerprint: {doc['dataFingerprint']}",
        (
            f"- Data: {doc['data']['train']} train, {doc['data']['validation']} validation, "
            f"{doc['data']['test']} test rows"
        ),
        f"- Method: {m.type}"
        + (
            f" (r={m.lora.r}, alpha={m.lora.alpha}, dropout={m.lora.dropout}, "
            f"targetModules={m.lora.target_modules or 'all-linear'})"
            if m.type != "full"
            else ""
        ),
        (
            f"- Training: epochs={t.epochs}, learningRate={t.learning_rate}, "
            f"batchSize={t.batch_size}, "
            f"gradientAccumulationSteps={t.gradient_accumulation_steps}, "
            f"maxSequenceLength={t.max_sequence_length}, seed={t.seed}, "
            f"mitigateBias={t.mitigate_bias}"
        ),
        f"- Steps: {doc['training']['steps']} of {doc['training']['totalSteps']}"
        + (" (stopped early)" if doc["training"]["stoppedEarly"] else ""),
        f"- Warm start: {config.warm_start_uri or 'no'}",
        "",
        "## Metrics (held-out test set)",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v:.4f} |" for k, v in doc["headline"].items()]
    if doc.get("championMetrics"):
        lines += ["", "## Production version on the same test set", "", "| metric | value |"]
        lines += ["|---|---|"]
        lines += [f"| {k} | {v:.4f} |" for k, v in doc["championMetrics"].items()]
    fairness = doc.get("fairness")
    lines += ["", "## Fairness", ""]
    if fairness:
        lines += [
            f"Sensitive column: `{config.dataset.sensitive_column}`.",
            "",
            f"- demographicParityDifference: {fairness['demographicParityDifference']:.4f}",
            f"- equalizedOddsDifference: {fairness['equalizedOddsDifference']:.4f}",
            f"- worstGroupAccuracy: {fairness['worstGroupAccuracy']:.4f}",
        ]
        lines += [
            f"- group {g}: accuracy {v['accuracy']:.4f} ({v['count']} examples)"
            for g, v in fairness["perGroup"].items()
        ]
    else:
        lines.append("Not audited: no `dataset.sensitiveColumn` was given.")
    lines += [
        "",
        "## Limitations",
        "",
        (
            "- Metrics come from one held-out split of the training distribution; production "
            "traffic can differ (the drift monitor compares it with `reference.parquet`)."
        ),
        "- Texts longer than maxSequenceLength tokens were truncated.",
    ]
    if config.task == "causal-lm":
        lines.append(
            f"- exactMatch and tokenF1 come from greedy decoding of "
            f"{doc['headline'].get('generationSamples', 0)} held-out prompts."
        )
    return "\n".join(lines) + "\n"
