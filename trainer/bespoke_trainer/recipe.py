"""The fine-tuning recipe: setup → train → evaluate → audit → write the version."""

from __future__ import annotations

import json
import logging
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from bespoke_trainer.artifacts import (
    VersionPaths,
    another_spec,
    claim_staging,
    finalize,
    model_card,
    version_metadata,
    version_paths,
    vocabulary,
    write_json,
    write_reference,
)
from bespoke_trainer.checkpoint_mirror import CheckpointMirror
from bespoke_trainer.config import (
    CAUSAL_LM_METRICS,
    CLASSIFICATION_METRICS,
    FAIRNESS_METRICS,
    TrainerConfig,
)
from bespoke_trainer.data import PreparedData, prepare_data
from bespoke_trainer.distributed import Dist, setup
from bespoke_trainer.encoding import Encoded, encode_causal, encode_classification
from bespoke_trainer.errors import (
    InvalidConfigError,
    InvalidDataError,
    ModelLoadError,
    StorageError,
)
from bespoke_trainer.evaluate import Evaluation, evaluate
from bespoke_trainer.fastpaths import (
    adapters_to_fp32,
    apply_liger,
    attention_implementation,
    base_dtype,
    maybe_compile,
)
from bespoke_trainer.loop import LoopResult, train
from bespoke_trainer.modeling import apply_method, check_method_supported, load_base, load_version
from bespoke_trainer.summary import success_summary
from bespoke_trainer.uris import local_path

__all__ = ["group_label_weights", "run"]

log = logging.getLogger(__name__)


def _cache_dir() -> Path:
    return Path(os.environ.get("BESPOKE_CACHE_DIR", Path(tempfile.gettempdir()) / "bespoke-cache"))


def group_label_weights(frame: pd.DataFrame) -> np.ndarray:
    """Reweighting (Kamiran & Calders): w(g, y) = P(g) P(y) / P(g, y).

    Under these weights group and label are independent in the training data, so the model
    gains nothing from the group as a shortcut for the label.
    """
    n = len(frame)
    p_g = frame["group"].value_counts() / n
    p_y = frame["label"].value_counts() / n
    p_gy = frame.groupby(["group", "label"]).size() / n
    weights = [
        p_g[g] * p_y[y] / p_gy[(g, y)] for g, y in zip(frame["group"], frame["label"], strict=True)
    ]
    return np.asarray(weights, dtype=np.float32)


def _headline(task: str, metrics: dict[str, Any]) -> dict[str, float]:
    names = CLASSIFICATION_METRICS if task == "text-classification" else CAUSAL_LM_METRICS
    return {k: float(metrics[k]) for k in names if k in metrics}


def _fairness_headline(fairness: dict[str, Any] | None) -> dict[str, float] | None:
    return None if fairness is None else {k: float(fairness[k]) for k in FAIRNESS_METRICS}


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run(config: TrainerConfig) -> dict[str, Any]:
    """Run the recipe end to end and return the success summary."""
    if config.training.num_threads:
        torch.set_num_threads(config.training.num_threads)
    cache = _cache_dir()
    paths = version_paths(config, cache)
    if paths.is_complete():
        _check_same_training(config, paths)
        log.info("Version %s is already complete; reporting it again", paths.final_uri)
        return _existing_summary(config, paths)
    check_method_supported(config.method)
    dist = setup()
    try:
        return _run(config, paths, cache, dist)
    finally:
        dist.close()


def _run(config: TrainerConfig, paths: VersionPaths, cache: Path, dist: Dist) -> dict[str, Any]:
    data = prepare_data(config, cache)
    # Object storage: checkpoints are mirrored next to the version, so a new pod resumes.
    mirror = CheckpointMirror.for_version(paths.final_uri, paths.checkpoints, config.training_hash)
    try:
        if dist.is_main:
            claim_staging(paths, config.training_hash)
            if mirror is not None:
                mirror.pull()
        dist.barrier()  # no rank looks for checkpoints before the staging dir is this version's
        paths.checkpoints.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot write to {paths.final_uri}: {exc.strerror or exc}") from exc
    _seed_everything(config.training.seed)
    warm_dir = _warm_start_dir(config, data, cache)
    t = config.training
    dtype = base_dtype(t, config.method.type, dist.device)
    loaded = load_base(
        config.base_model,
        config.task,
        config.method,
        data.labels,
        cache,
        dtype=dtype,
        attn_implementation=attention_implementation(dist.device),
    )
    liger = t.liger_kernels and apply_liger(loaded.model, dist.device)
    model = apply_method(
        loaded,
        config.task,
        config.method,
        warm_start_dir=warm_dir,
        gradient_checkpointing=t.gradient_checkpointing,
    )
    if dtype is not None:
        adapters_to_fp32(model)
    if config.method.type != "qlora":
        model.to(dist.device)
    maybe_compile(model, t)
    tokenizer = loaded.tokenizer
    encoded = _encode_train(config, data, tokenizer)
    wrapped = dist.wrap(model)
    ev = config.evaluation
    needs_generation = t.early_stopping.metric in ("exactMatch", "tokenF1")

    def validate() -> dict[str, Any]:
        result = evaluate(
            model,
            tokenizer,
            data.validation,
            task=config.task,
            labels=data.labels,
            max_length=t.max_sequence_length,
            batch_size=t.batch_size,
            generation_samples=ev.generation_samples if needs_generation else 0,
            max_new_tokens=ev.max_new_tokens,
        )
        return result.metrics

    result = train(
        wrapped,
        encoded,
        t,
        pad_id=int(tokenizer.pad_token_id or 0),
        evaluate=validate,
        checkpoint_dir=paths.checkpoints,
        dist=dist,
        model_computes_loss=liger,
        on_step=mirror.on_step if mirror is not None and dist.is_main else None,
    )
    if not dist.is_main:
        return {}
    final = _evaluate_on_test(model, tokenizer, data.test, config, data.labels)
    champion = _champion(config, data, cache)
    summary = _write_version(config, paths, data, model, tokenizer, result, final, champion)
    if mirror is not None:
        mirror.discard()
    return summary


def _encode_train(config: TrainerConfig, data: PreparedData, tokenizer: Any) -> Encoded:
    t = config.training
    if config.task != "text-classification":
        return encode_causal(data.train, tokenizer, t.max_sequence_length)
    weights = None
    if t.mitigate_bias:
        weights = group_label_weights(data.train)
        log.info(
            "Reweighting by group and label: weights from %.3f to %.3f",
            float(weights.min()),
            float(weights.max()),
        )
    return encode_classification(data.train, tokenizer, data.labels, t.max_sequence_length, weights)


def _warm_start_dir(config: TrainerConfig, data: PreparedData, cache: Path) -> Path | None:
    if not config.warm_start_uri:
        return None
    path = local_path(config.warm_start_uri, cache_dir=cache)
    try:
        meta = json.loads((path / "bespoke-version.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"warm-start version {config.warm_start_uri} is unreadable") from exc
    # An adapter (lora/qlora) continues as an adapter; full weights continue as full weights.
    previous_full = meta.get("method") == "full"
    if previous_full != (config.method.type == "full"):
        raise InvalidConfigError(
            f"`warmStartUri` points at a {meta.get('method')} version and `method.type` is "
            f"{config.method.type}; warm start needs both full or both adapters (lora/qlora)"
        )
    if config.task == "text-classification" and list(meta.get("labels") or []) != data.labels:
        raise InvalidDataError(
            f"labels {data.labels} differ from the warm-start version's {meta.get('labels')}; "
            "train from the base model instead"
        )
    return path


def _evaluate_on_test(
    model: torch.nn.Module,
    tokenizer: Any,
    frame: pd.DataFrame,
    config: TrainerConfig,
    labels: list[str],
) -> Evaluation:
    return evaluate(
        model,
        tokenizer,
        frame,
        task=config.task,
        labels=labels,
        max_length=config.training.max_sequence_length,
        batch_size=config.training.batch_size,
        generation_samples=config.evaluation.generation_samples,
        max_new_tokens=config.evaluation.max_new_tokens,
    )


def _champion(config: TrainerConfig, data: PreparedData, cache: Path) -> Evaluation | None:
    if not config.champion_uri:
        return None
    path = local_path(config.champion_uri, cache_dir=cache)
    loaded, meta = load_version(path, cache)
    if config.task == "text-classification" and list(meta.get("labels") or []) != data.labels:
        log.warning("Champion labels %s differ from this run's; skipping it", meta.get("labels"))
        return None
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    loaded.model.to(device)
    log.info("Evaluating the production version %s on the same test set", config.champion_uri)
    return _evaluate_on_test(loaded.model, loaded.tokenizer, data.test, config, data.labels)


def _write_version(
    config: TrainerConfig,
    paths: VersionPaths,
    data: PreparedData,
    model: torch.nn.Module,
    tokenizer: Any,
    result: LoopResult,
    final: Evaluation,
    champion: Evaluation | None,
) -> dict[str, Any]:
    headline = _headline(config.task, final.metrics)
    champion_headline = _headline(config.task, champion.metrics) if champion else None
    texts = (
        data.train["text"]
        if config.task == "text-classification"
        else pd.concat([data.train["prompt"], data.train["response"]])
    )
    doc = {
        "version": config.version,
        "task": config.task,
        "dataFingerprint": data.fingerprint,
        "headline": headline,
        "metrics": final.metrics,
        "fairness": final.fairness,
        "championMetrics": champion_headline,
        "championDetail": champion.metrics if champion else None,
        "data": {
            "train": len(data.train),
            "validation": len(data.validation),
            "test": len(data.test),
        },
        "training": {
            "steps": result.state.step,
            "totalSteps": result.total_steps,
            "stoppedEarly": result.state.stopped_early,
            "selectionMetric": result.selection_metric,
            "bestStep": result.state.best_step,
            "bestValue": result.state.best_metric,
            "resumedFromStep": result.resumed_from_step,
            "history": result.state.history,
            "mitigateBias": config.training.mitigate_bias,
        },
    }
    staging = paths.staging
    try:
        if config.method.type == "full":
            model.save_pretrained(str(staging / "model"))  # type: ignore[operator]
        else:
            model.save_pretrained(str(staging / "adapter"))  # type: ignore[operator]
        tokenizer.save_pretrained(str(staging / "tokenizer"))
        write_json(
            staging / "bespoke-version.json",
            version_metadata(config, data.labels, data.fingerprint),
        )
        write_json(staging / "metrics.json", doc)
        write_json(staging / "vocabulary.json", {"tokens": vocabulary(texts)})
        write_reference(staging, final.reference)
        (staging / "model-card.md").write_text(model_card(config, doc), encoding="utf-8")
    except OSError as exc:
        raise StorageError(f"cannot write version artifacts: {exc}") from exc
    finalize(paths)
    return success_summary(
        version=config.version,
        metrics=headline,
        champion=champion_headline,
        fairness=_fairness_headline(final.fairness),
        artifact_uri=paths.final_uri,
        fingerprint=data.fingerprint,
        message=_message(config, headline, result),
    )


def _message(config: TrainerConfig, headline: dict[str, float], result: LoopResult) -> str:
    key = "accuracy" if config.task == "text-classification" else "evalLoss"
    stop = ", stopped early" if result.state.stopped_early else ""
    return f"Trained {result.state.step} steps{stop}; {key} {headline.get(key, float('nan')):.4f}"


def _check_same_training(config: TrainerConfig, paths: VersionPaths) -> None:
    """A complete version from another spec at this location is never reported as this one."""
    assert paths.final is not None
    found = another_spec(paths.final, config.training_hash)
    if found is not None:
        assert config.training_hash is not None  # another_spec found something to compare
        raise InvalidConfigError(
            f"{paths.final_uri} already holds a version v{config.version} trained from another "
            f"spec (training hash {found[:12]}…, this one {config.training_hash[:12]}…), for "
            "example of an earlier customization of the same name; it is not overwritten: "
            "point storage.uri at a new location, or remove that folder"
        )


def _existing_summary(config: TrainerConfig, paths: VersionPaths) -> dict[str, Any]:
    assert paths.final is not None
    doc = json.loads((paths.final / "metrics.json").read_text(encoding="utf-8"))
    return success_summary(
        version=config.version,
        metrics=doc["headline"],
        champion=doc.get("championMetrics"),
        fairness=_fairness_headline(doc.get("fairness")),
        artifact_uri=paths.final_uri,
        fingerprint=doc["dataFingerprint"],
        message="Version was already complete",
    )
