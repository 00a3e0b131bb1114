"""The local runtime's state directory: what Kubernetes would store, as files.

Layout under `<state-dir>/<customization>/`:

| path | holds |
|---|---|
| `customization.json` | the customization as last run, with its status |
| `versions/v<N>.json` | each ModelVersion (spec and status) |
| `runs/v<N>-<attempt>/` | a trainer attempt: `config.json`, `summary.json`, `trainer.log`, `pid` |
| `artifacts/versions/v<N>/` | the trainer's artifacts (the storage location of local runs) |
| `serving.json`, `serving.log` | the `bentoml serve` process: pid, port, version |
| `events.jsonl` | lifecycle events |
| `rollback.json` | the version `bespoke rollback` pinned, and the file's own pin it replaced |
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bespoke_operator.api import ModelCustomization, ModelVersion
from bespoke_operator.errors import StateUnreadableError

__all__ = [
    "CustomizationState",
    "RollbackPin",
    "ServingRecord",
    "TrainerRunDir",
    "write_json",
]


def _number(text: str) -> int:
    return int(text) if text.isdigit() else 0


def write_json(path: Path, data: Any) -> None:
    """Writes JSON atomically: a crash leaves the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str), encoding="utf-8")
    os.replace(tmp, path)


@dataclass(frozen=True)
class TrainerRunDir:
    """The files of one trainer attempt."""

    path: Path
    version: int
    attempt: int

    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def log(self) -> Path:
        return self.path / "trainer.log"

    @property
    def pid(self) -> Path:
        return self.path / "pid"


@dataclass(frozen=True)
class ServingRecord:
    """The serving process as started."""

    pid: int
    port: int
    version: int
    artifact_uri: str
    env_digest: str

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass(frozen=True)
class RollbackPin:
    """A `bespoke rollback` pin: kept while the file is rerun unchanged (see `LocalRuntime.admit`).

    `replaced` is the file's own `serving.pinnedVersion`, so the spec as the file states it can be
    told apart from the pin when the file is admitted again.
    """

    version: int
    replaced: int | None


_Record = TypeVar("_Record", ServingRecord, RollbackPin)


class CustomizationState:
    """Reads and writes one customization's state directory."""

    def __init__(self, root: Path, name: str) -> None:
        self.dir = root / name
        self.name = name

    @property
    def artifacts(self) -> Path:
        """The storage root of local runs (versions go to `versions/v<N>/` under it)."""
        return self.dir / "artifacts"

    @property
    def events(self) -> Path:
        return self.dir / "events.jsonl"

    @property
    def serving_log(self) -> Path:
        return self.dir / "serving.log"

    def load_customization(self) -> ModelCustomization | None:
        path = self.dir / "customization.json"
        if not path.exists():
            return None
        try:
            return ModelCustomization.model_validate_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
            raise StateUnreadableError(path, exc, self.dir) from exc

    def save_customization(self, mc: ModelCustomization) -> None:
        write_json(self.dir / "customization.json", mc.model_dump(mode="json", by_alias=True))

    def versions(self) -> list[ModelVersion]:
        found = []
        # By number: by name v10 would come before v2.
        files = sorted((self.dir / "versions").glob("v*.json"), key=lambda p: _number(p.stem[1:]))
        for path in files:
            try:
                found.append(ModelVersion.model_validate_json(path.read_text(encoding="utf-8")))
            except (OSError, ValueError) as exc:
                raise StateUnreadableError(path, exc, self.dir) from exc
        return found

    def save_version(self, version: ModelVersion) -> None:
        path = self.dir / "versions" / f"v{version.spec.version}.json"
        write_json(path, version.model_dump(mode="json", by_alias=True))

    def delete_version(self, number: int) -> None:
        (self.dir / "versions" / f"v{number}.json").unlink(missing_ok=True)

    def run_dir(self, version: int, attempt: int) -> TrainerRunDir:
        return TrainerRunDir(self.dir / "runs" / f"v{version}-{attempt}", version, attempt)

    def runs(self) -> Iterator[TrainerRunDir]:
        found = []
        for path in (self.dir / "runs").glob("v*-*"):
            version, _, attempt = path.name[1:].partition("-")
            if version.isdigit() and attempt.isdigit():
                found.append(TrainerRunDir(path, int(version), int(attempt)))
        yield from sorted(found, key=lambda run: (run.version, run.attempt))

    def serving(self) -> ServingRecord | None:
        return self._record("serving.json", ServingRecord)

    def save_serving(self, record: ServingRecord | None) -> None:
        self._save_record("serving.json", record)

    def rollback_pin(self) -> RollbackPin | None:
        return self._record("rollback.json", RollbackPin)

    def save_rollback_pin(self, pin: RollbackPin | None) -> None:
        self._save_record("rollback.json", pin)

    def _record(self, name: str, kind: type[_Record]) -> _Record | None:
        """A small dataclass record kept as JSON in the state dir; None when there is none."""
        path = self.dir / name
        if not path.exists():
            return None
        try:
            return kind(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as exc:
            raise StateUnreadableError(path, exc, self.dir) from exc

    def _save_record(self, name: str, record: ServingRecord | RollbackPin | None) -> None:
        path = self.dir / name
        if record is None:
            path.unlink(missing_ok=True)
        else:
            write_json(path, record.__dict__)

    def append_event(self, event: dict[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        with self.events.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(event, default=str) + "\n")
