"""compute_drift on frames with and without planted drift, and the gauges that export it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from traffic_factory import REFERENCE_WORDS, reference_traffic, shifted_traffic

from bespoke_monitor import (
    FEATURES,
    DriftCollector,
    DriftResult,
    _evidently,
    compute_drift,
    drift_between,
    featurize,
    text_features,
)
from bespoke_monitor.methods import is_p_value

LABELS = ["negative", "positive"]


def test_features_measure_length_words_and_unknown_words() -> None:
    frame = text_features(
        ["Hello world", "hello UNKNOWN thing!", ""],
        vocabulary={"hello", "world", "thing"},
        predictions=["a", "b", "a"],
        confidences=[0.9, 0.5, 0.1],
    )
    assert frame["textLength"].tolist() == [11.0, 20.0, 0.0]
    assert frame["wordCount"].tolist() == [2.0, 3.0, 0.0]
    assert frame["oovRate"].tolist() == pytest.approx([0.0, 1 / 3, 0.0])
    assert frame["predictedLabel"].tolist() == ["a", "b", "a"]
    assert frame["confidence"].tolist() == [0.9, 0.5, 0.1]


def test_features_leave_out_prediction_columns_for_generation_traffic() -> None:
    frame = featurize(pd.DataFrame({"text": ["a prompt"]}), vocabulary=())
    assert list(frame.columns) == ["textLength", "wordCount", "oovRate"]


def test_reference_traffic_raises_no_drift_over_ten_consecutive_windows() -> None:
    reference = reference_traffic(1000, seed=1)
    results = [
        compute_drift(
            reference,
            reference_traffic(500, seed=100 + i),
            vocabulary=REFERENCE_WORDS,
            labels=LABELS,
        )
        for i in range(10)
    ]
    assert [r.dataset_drift for r in results] == [False] * 10
    assert all(r.drift_share < 0.5 for r in results)


@pytest.mark.parametrize("method", ["auto", "psi", "ks", "wasserstein", "jensenshannon"])
def test_planted_shift_is_detected_with_every_method(method: str) -> None:
    result = compute_drift(
        reference_traffic(1000, seed=1),
        shifted_traffic(500, seed=2),
        vocabulary=REFERENCE_WORDS,
        method=method,  # type: ignore[arg-type]
        threshold=0.5,
        labels=LABELS,
        version=3,
    )
    assert result.dataset_drift is True
    assert result.drift_share >= 0.5
    assert result.method == method
    assert set(result.features) == {
        "textLength",
        "wordCount",
        "oovRate",
        "confidence",
        "predictedLabel",
    }
    assert result.prediction_mix["negative"] > 0.8
    assert result.window_rows == 500
    if method != "auto":
        # The configured method is what Evidently used on the numeric features.
        assert result.feature_methods["textLength"] == method


def test_threshold_is_the_drifted_feature_share_needed() -> None:
    # Only the label mix shifts: one feature of five drifts, below 0.5 but above 0.1.
    current = reference_traffic(500, seed=5)
    current["prediction"] = "negative"
    reference = reference_traffic(1000, seed=1)
    lenient = compute_drift(reference, current, vocabulary=REFERENCE_WORDS, threshold=0.5)
    strict = compute_drift(reference, current, vocabulary=REFERENCE_WORDS, threshold=0.1)
    assert lenient.drift_share == strict.drift_share == pytest.approx(0.2)
    assert (lenient.dataset_drift, strict.dataset_drift) == (False, True)


def test_invalid_inputs_are_rejected_with_the_reason() -> None:
    reference = reference_traffic(10, seed=1)
    with pytest.raises(ValueError, match="`threshold`"):
        compute_drift(reference, reference, threshold=1.5)
    with pytest.raises(ValueError, match="at least 2 rows"):
        compute_drift(reference, reference.head(1))
    with pytest.raises(ValueError, match="`text` column"):
        compute_drift(reference, pd.DataFrame({"words": ["x", "y"]}))


def test_result_payload_is_the_operator_contract() -> None:
    result = compute_drift(
        reference_traffic(300, seed=1),
        shifted_traffic(200, seed=2),
        vocabulary=REFERENCE_WORDS,
        labels=LABELS,
        version=7,
    )
    payload = result.payload()
    assert {
        "version",
        "checkedAt",
        "windowRows",
        "datasetDrift",
        "driftShare",
        "method",
        "threshold",
        "features",
        "predictionMix",
    } <= set(payload)
    assert payload["version"] == 7
    assert DriftResult.model_validate(payload) == result


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_gauges_agree_with_the_result() -> None:
    collector = DriftCollector("ns1", "sentiment", 4, labels=LABELS)
    before = _samples(collector.exposition())
    base = (("customization", "sentiment"), ("namespace", "ns1"), ("version", "4"))
    assert before == {("bespoke_drift_window_rows", base): 0.0}

    result = compute_drift(
        reference_traffic(300, seed=1),
        shifted_traffic(200, seed=2),
        vocabulary=REFERENCE_WORDS,
        labels=LABELS,
        version=4,
    )
    collector.update(result)
    samples = _samples(collector.exposition())
    assert samples[("bespoke_drift_share_ratio", base)] == result.drift_share
    assert samples[("bespoke_drift_detected", base)] == 1.0
    assert samples[("bespoke_drift_window_rows", base)] == 200
    assert math.isclose(
        samples[("bespoke_drift_last_run_timestamp_seconds", base)],
        result.checked_at.timestamp(),
    )
    for feature, score in result.features.items():
        labels = tuple(sorted((*base, ("feature", feature))))
        method = result.feature_methods[feature]
        # One direction for every method: higher = more drift; p-values also exported as such.
        assert samples[("bespoke_drift_feature_score", labels)] == pytest.approx(
            1.0 - score if is_p_value(method) else score
        )
        assert samples.get(("bespoke_drift_feature_p_value", labels)) == (
            pytest.approx(score) if is_p_value(method) else None
        )
    for label in LABELS:
        key = ("bespoke_prediction_mix_ratio", tuple(sorted((*base, ("label", label)))))
        assert samples[key] == pytest.approx(result.prediction_mix[label])
    # Only bounded labels: nothing but namespace/customization/version/feature/label.
    assert {k for _, labels in samples for k, _ in labels} <= {
        "namespace",
        "customization",
        "version",
        "feature",
        "label",
    }


@pytest.mark.parametrize("method", ["auto", "psi", "ks", "wasserstein", "jensenshannon"])
@pytest.mark.parametrize("shifted", [False, True], ids=["reference", "shifted"])
@pytest.mark.parametrize("reference_rows", [300, 1500], ids=["small", "large"])
def test_per_column_tests_score_exactly_as_evidentlys_preset(
    method: str, shifted: bool, reference_rows: int
) -> None:
    # The monitor runs Evidently's tests without its report (which renders charts); the
    # preset, run in full, must agree on every score, method and drift verdict. 1,000
    # reference rows is where Evidently switches its automatic choice of test.
    vocabulary = frozenset(REFERENCE_WORDS)
    reference = featurize(reference_traffic(reference_rows, seed=5), vocabulary)
    traffic = shifted_traffic(400, seed=6) if shifted else reference_traffic(400, seed=7)
    current = featurize(traffic, vocabulary)
    columns = {
        "numerical": ["textLength", "wordCount", "oovRate", "confidence"],
        "categorical": ["predictedLabel"],
        "method": None if method == "auto" else method,
    }
    fast = _evidently.column_drift(reference, current, **columns)  # type: ignore[arg-type]
    full = _evidently.run_drift_preset(reference, current, drift_share=0.5, **columns)  # type: ignore[arg-type]
    assert fast.drifted_columns == full.drifted_columns
    assert fast.drifted_share == pytest.approx(full.drifted_share)
    assert set(fast.columns) == set(full.columns)
    for name, column in full.columns.items():
        assert fast.columns[name].method == column.method, name
        if math.isnan(column.score):
            assert math.isnan(fast.columns[name].score), name
        else:
            assert fast.columns[name].score == pytest.approx(column.score, rel=1e-9), name


def _embeddings(rows: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(0.0, 1.0, (rows, 32))
    vectors[:, :4] += shift  # a move along a few directions, as new topics would cause
    return vectors


def test_embedding_drift_flags_moved_embeddings_and_not_resampled_ones() -> None:
    vocabulary = frozenset(REFERENCE_WORDS)
    reference = featurize(reference_traffic(600, seed=1), vocabulary)
    current = featurize(reference_traffic(300, seed=2), vocabulary)
    reference_embeddings = _embeddings(600, seed=3)

    quiet = drift_between(
        reference,
        current,
        labels=LABELS,
        reference_embeddings=reference_embeddings,
        current_embeddings=_embeddings(300, seed=4),
    )
    assert quiet.features["embeddings"] < 0.55
    assert quiet.feature_methods["embeddings"] == "model roc_auc"
    assert quiet.dataset_drift is False

    moved = drift_between(
        reference,
        current,
        labels=LABELS,
        threshold=0.2,
        reference_embeddings=reference_embeddings,
        current_embeddings=_embeddings(300, seed=4, shift=1.0),
    )
    assert moved.features["embeddings"] > 0.55
    # Only the embeddings moved: one of six features, above the 0.2 threshold share.
    assert moved.drift_share == pytest.approx(1 / 6)
    assert moved.dataset_drift is False
    assert set(moved.features) == {*FEATURES}


def test_embeddings_must_be_matrices_of_one_width() -> None:
    frame = featurize(reference_traffic(50, seed=1), frozenset(REFERENCE_WORDS))
    with pytest.raises(ValueError, match="same width"):
        drift_between(
            frame,
            frame,
            reference_embeddings=np.zeros((50, 8)),
            current_embeddings=np.zeros((50, 4)),
        )
