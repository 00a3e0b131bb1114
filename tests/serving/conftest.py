"""Fixtures for the serving tests: version directories and the service's ASGI app in-process."""

from __future__ import annotations

import importlib
import os
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from version_factory import build_classifier_version, tiny_bert_base

# The service reads its settings when imported; the in-process app is built once per session.
ASGI_ENV = {
    "BESPOKE_NAMESPACE": "team-a",
    "BESPOKE_CUSTOMIZATION": "sentiment",
    "BESPOKE_VERSION": "1",
    "BESPOKE_MAX_TEXTS_PER_REQUEST": "4",
    "BESPOKE_MAX_CHARACTERS_PER_TEXT": "300",
    "BESPOKE_MAX_NEW_TOKENS": "8",
    "BESPOKE_MAX_REQUEST_BYTES": "4096",
    "BESPOKE_CAPTURE_WINDOW_SIZE": "150",
    "BESPOKE_DRIFT_MIN_ROWS": "100",
    "BESPOKE_DRIFT_INTERVAL_SECONDS": "1",
}


@pytest.fixture(scope="session")
def tiny_version(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT with a briefly trained LoRA adapter, in the version layout."""
    root = tmp_path_factory.mktemp("storage")
    base = tiny_bert_base(root / "base")
    return build_classifier_version(root, base, steps=3)


def import_service(env: dict[str, str]) -> Any:
    """Import (or re-import) `bespoke_serving.service` under the given environment."""
    os.environ.update(env)
    with warnings.catch_warnings():
        # BentoML 1.4's own imports raise deprecation warnings (pathspec, pydantic 2.11).
        warnings.simplefilter("ignore", DeprecationWarning)
        if "bespoke_serving.service" in sys.modules:
            return importlib.reload(sys.modules["bespoke_serving.service"])
        return importlib.import_module("bespoke_serving.service")


@pytest.fixture(scope="session")
def asgi_client(tiny_version: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A Starlette TestClient over the BentoML ASGI app, after the model reports ready.

    One per session: BentoML registers its request metrics globally, so a second app in the
    same process would collide with the first.
    """
    from starlette.testclient import TestClient

    capture_dir = tmp_path_factory.mktemp("capture")
    env = {
        **ASGI_ENV,
        "BESPOKE_MODEL_URI": tiny_version.as_uri(),
        "BESPOKE_CAPTURE_URI": str(capture_dir),
    }
    saved = {k: os.environ.get(k) for k in env}
    module = import_service(env)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            client = TestClient(module.Bespoke.to_asgi())
            client.__enter__()
        try:
            # A bound on waiting, not an assertion on speed.
            for _ in range(600):
                if client.get("/readyz").status_code == 200:
                    break
                time.sleep(0.1)
            client.capture_dir = capture_dir  # type: ignore[attr-defined]
            yield client
        finally:
            client.__exit__(None, None, None)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
