"""Everything one served version needs at run time, independent of BentoML's service class."""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path
from typing import Any

import torch

from bespoke_monitor import DriftCollector, DriftResult
from bespoke_serving.capture import JsonlSink, TrafficCapture
from bespoke_serving.drift_loop import DriftLoop
from bespoke_serving.errors import NotReadyError, WrongTaskError
from bespoke_serving.model import BaseLocation, Classifier, Generator, LoadedModel, load_model
from bespoke_serving.settings import ServingSettings, SettingsError
from bespoke_serving.uris import local_dir
from bespoke_serving.version import (
    VersionInfo,
    read_reference,
    read_version,
    read_vocabulary,
)

__all__ = ["NotReadyError", "Runtime", "WrongTaskError"]

log = logging.getLogger(__name__)


class Runtime:
    """Loads the version in the background, serves predictions, captures traffic, runs drift."""

    def __init__(self, settings: ServingSettings) -> None:
        if settings.model_uri is None:
            raise SettingsError("BESPOKE_MODEL_URI is required: the version directory to serve")
        self.settings = settings
        self.version_dir = local_dir(settings.model_uri, settings.pvc_root)
        self.info: VersionInfo = read_version(self.version_dir, settings.version)
        self.collector = DriftCollector(
            settings.namespace, settings.customization, self.info.version, self.info.labels
        )
        self.capture: TrafficCapture | None = None
        self.drift: DriftLoop | None = None
        self.model: LoadedModel | None = None
        self.load_error: str | None = None
        self._ready = threading.Event()
        # Set once the reference's embeddings exist: only then are request embeddings useful.
        self._embed = False
        self._loader: threading.Thread | None = None

    @property
    def ready(self) -> bool:
        """True once the model is loaded and warmed up."""
        return self._ready.is_set()

    def start(self, background: bool = True) -> None:
        """Load and warm up the model (in a thread by default so `/healthz` answers meanwhile)."""
        if background:
            self._loader = threading.Thread(target=self._load, name="bespoke-load", daemon=True)
            self._loader.start()
        else:
            self._load()

    def wait_ready(self, timeout: float) -> bool:
        """Block until ready or the timeout passes."""
        return self._ready.wait(timeout)

    def classify(self, texts: list[str]) -> list[dict[str, Any]]:
        """Label, score and version per text; the traffic is captured off the request path."""
        model = self._model()
        if not isinstance(model, Classifier):
            raise WrongTaskError("this version serves causal-lm: use /generate")
        embeddings = None
        if self.capture is not None and self._embed:
            predictions, embeddings = model.classify_with_embeddings(texts)
        else:
            predictions = model.classify(texts)
        if self.capture is not None:
            labels, scores = [p.label for p in predictions], [p.score for p in predictions]
            self.capture.submit(texts, labels, scores, embeddings)
        version = self.info.version
        return [{"label": p.label, "score": p.score, "version": version} for p in predictions]

    def generate(
        self, prompt: str, max_new_tokens: int | None, temperature: float, top_p: float
    ) -> dict[str, Any]:
        """Continuation of the prompt within the configured token bound."""
        model = self._model()
        if not isinstance(model, Generator):
            raise WrongTaskError("this version serves text-classification: use /classify")
        tokens = min(max_new_tokens or self.settings.max_new_tokens, self.settings.max_new_tokens)
        text = model.generate(prompt, tokens, temperature, top_p)
        if self.capture is not None:
            self.capture.submit([prompt], [None], [None])
        return {"text": text, "version": self.info.version}

    def drift_payload(self) -> dict[str, Any]:
        """The `/drift` document: the latest reading, or an empty one before the first."""
        latest: DriftResult | None = self.drift.latest if self.drift is not None else None
        if latest is not None:
            return latest.payload()
        return {
            "version": self.info.version,
            "checkedAt": None,
            "windowRows": len(self.capture) if self.capture is not None else 0,
            "datasetDrift": False,
            "driftShare": 0.0,
            "method": self.settings.drift_method,
            "threshold": self.settings.drift_threshold,
            "features": {},
            "featureMethods": {},
            "predictionMix": {},
            "driftedFeatures": [],
        }

    def close(self) -> None:
        """Stop the background threads."""
        if self.drift is not None:
            self.drift.stop()
        if self.capture is not None:
            self.capture.close()

    def _model(self) -> LoadedModel:
        if self.model is None or not self.ready:
            raise NotReadyError(self.load_error or "the model is still loading")
        return self.model

    def _load(self) -> None:
        try:
            self._load_model()
            self._start_monitoring()
        except Exception as exc:
            # Readiness stays false and requests get 503 with the reason; the pod is not
            # killed in a crash loop that would hide the message.
            self.load_error = f"model load failed: {exc}"
            log.exception("Model load failed")
            return
        self._ready.set()
        log.info("Version %d ready", self.info.version)

    def _load_model(self) -> None:
        settings = self.settings
        if settings.torch_threads:
            torch.set_num_threads(settings.torch_threads)
        uri = settings.base_model_uri or self.info.base_model.uri
        base: BaseLocation
        if uri.startswith("hf://"):
            base = BaseLocation(uri.removeprefix("hf://"), self.info.base_model.revision)
        else:
            base = BaseLocation(local_dir(uri, settings.pvc_root, Path(tempfile.gettempdir())))
        model = load_model(self.version_dir, base, self.info, settings.merge_adapter)
        # Warm-up: the first forward pass allocates and selects kernels; do it before readiness.
        if isinstance(model, Classifier):
            model.classify(["warm up", "a second, longer warm-up text"])
        else:
            model.generate("warm up", 1, 0.0, 1.0)
        self.model = model

    def _start_monitoring(self) -> None:
        settings = self.settings
        sink = None
        if settings.capture_uri:
            directory = local_dir(settings.capture_uri, settings.pvc_root)
            sink = JsonlSink(
                directory,
                settings.capture_max_bytes,
                settings.capture_max_files,
                prefix=f"v{self.info.version}",
            )
        if settings.drift_enabled or sink is not None:
            self.capture = TrafficCapture(
                settings.capture_window_size, sink, settings.capture_queue_size
            )
        reference = read_reference(self.version_dir)
        if not settings.drift_enabled or self.capture is None:
            return
        if reference is None or len(reference) < 2:
            log.warning("Drift disabled: %s has no usable reference.parquet", self.version_dir)
            return
        reference_embeddings = None
        if settings.drift_embeddings and isinstance(self.model, Classifier):
            reference_embeddings = self.model.embed(reference["text"].astype(str).tolist())
            self._embed = True
        self.drift = DriftLoop(
            reference=reference,
            vocabulary=read_vocabulary(self.version_dir),
            capture=self.capture,
            collector=self.collector,
            version=self.info.version,
            labels=self.info.labels,
            method=settings.drift_method,
            threshold=settings.drift_threshold,
            interval_seconds=settings.drift_interval_seconds,
            min_rows=settings.drift_min_rows,
            isolated=settings.drift_isolated,
            reference_embeddings=reference_embeddings,
        )
        self.drift.start()
