"""Checkpoints mirrored to object storage, so that a preempted pod resumes on another node.

With `s3://` (or any fsspec object store) output, a version is staged on the pod's local disk
and uploaded at the end; its checkpoints would die with the pod. The mirror copies each new
checkpoint next to the version in storage and, when an attempt starts, brings the newest one
back into the local checkpoint directory, where the loop resumes from it as from its own.

Layout: `<parent>/.<name>.partial/TRAINING_HASH` and
`<parent>/.<name>.partial/checkpoints/step-<N>/{trainable.safetensors,optimizer.pt,state.json}`
for the version `<parent>/<name>` (the local staging convention). `state.json` is written
last, so a checkpoint without it is incomplete (an upload cut short) and ignored, as locally.
Checkpoints of another spec (another training hash) are discarded, not resumed. Mirroring is
best effort: a failed upload or download is logged and training goes on (only the resume is
lost); the version's own upload still fails the attempt if storage is unreachable.
"""

from __future__ import annotations

import logging
import os
import posixpath
import shutil
from pathlib import Path
from typing import Any, Final

from bespoke_trainer.checkpoint import latest_checkpoint
from bespoke_trainer.uris import is_remote

__all__ = ["CheckpointMirror"]

log = logging.getLogger(__name__)

#: Written last: a remote checkpoint without it is incomplete.
_MARKER: Final = "state.json"
_KEEP: Final = 2
_TRAINING_HASH: Final = "TRAINING_HASH"


class CheckpointMirror:
    """Pushes new local checkpoints to storage and pulls the newest one back."""

    def __init__(self, fs: Any, root: str, local: Path, training_hash: str | None) -> None:
        self._fs = fs
        self._local = local
        self._root = root.rstrip("/")
        self._checkpoints = f"{self._root}/checkpoints"
        self._training_hash = training_hash
        self._pushed: str | None = None

    @classmethod
    def for_version(
        cls, final_uri: str, local: Path, training_hash: str | None
    ) -> CheckpointMirror | None:
        """The mirror of `local` for a version written to object storage; None for a mounted
        location (its checkpoints are already in storage)."""
        if not is_remote(final_uri):
            return None
        import fsspec

        fs, path = fsspec.core.url_to_fs(final_uri.rstrip("/"))
        parent, name = posixpath.split(path)
        return cls(fs, f"{parent}/.{name}.partial", local, training_hash)

    def pull(self) -> Path | None:
        """Brings the newest complete remote checkpoint into the local directory, unless that
        has one as new; discards remote checkpoints of another spec. Returns what was brought."""
        try:
            return self._pull(self._local)
        except OSError as exc:
            log.warning(
                "Cannot read checkpoints from %s (starting without them): %s", self._root, exc
            )
            return None

    def on_step(self, step: int, stats: object = None) -> None:
        """The loop's step hook: pushes a checkpoint the loop saved since the last push."""
        del step, stats
        self.push()

    def push(self) -> None:
        """Uploads the newest local checkpoint if it is not in storage yet; keeps the last two."""
        newest = latest_checkpoint(self._local)
        if newest is None or newest.name == self._pushed:
            return
        try:
            self._push(newest)
        except OSError as exc:
            log.warning("Cannot mirror checkpoint %s to %s: %s", newest.name, self._root, exc)
            return
        self._pushed = newest.name
        log.info("Mirrored checkpoint %s to %s", newest.name, self._root)

    def discard(self) -> None:
        """Removes the mirrored checkpoints (the version is complete: nothing to resume)."""
        try:
            if self._fs.exists(self._root):
                self._fs.rm(self._root, recursive=True)
        except OSError as exc:
            log.warning("Cannot remove mirrored checkpoints at %s: %s", self._root, exc)

    def _pull(self, local: Path) -> Path | None:
        fs = self._fs
        recorded = self._recorded_hash()
        if recorded and self._training_hash and recorded != self._training_hash:
            log.warning(
                "Discarding mirrored checkpoints at %s: made from another spec (training hash %s…)",
                self._root,
                recorded[:12],
            )
            fs.rm(self._root, recursive=True)
        if self._training_hash and recorded != self._training_hash:
            fs.pipe_file(f"{self._root}/{_TRAINING_HASH}", (self._training_hash + "\n").encode())
        complete = sorted(
            posixpath.basename(p.rstrip("/"))
            for p in (
                fs.ls(self._checkpoints, detail=False) if fs.exists(self._checkpoints) else []
            )
            if posixpath.basename(p.rstrip("/")).startswith("step-")
            and fs.exists(f"{p.rstrip('/')}/{_MARKER}")
        )
        if not complete:
            return None
        name = complete[-1]
        mine = latest_checkpoint(local)
        if mine is not None and mine.name >= name:
            return None
        local.mkdir(parents=True, exist_ok=True)
        tmp = local / f".tmp-{name}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        remote = f"{self._checkpoints}/{name}"
        files = [posixpath.basename(p) for p in fs.ls(remote, detail=False)]
        for file in sorted(files, key=lambda f: f == _MARKER):
            fs.get_file(f"{remote}/{file}", str(tmp / file))
        pulled: Path = local / str(name)
        os.replace(tmp, pulled)
        self._pushed = str(name)
        log.info("Resuming from mirrored checkpoint %s of %s", name, self._root)
        return pulled

    def _push(self, newest: Path) -> None:
        fs = self._fs
        remote = f"{self._checkpoints}/{newest.name}"
        files = sorted(
            (f for f in newest.iterdir() if f.is_file()), key=lambda f: f.name == _MARKER
        )
        for file in files:
            fs.put_file(str(file), f"{remote}/{file.name}")
        existing = sorted(
            posixpath.basename(p.rstrip("/"))
            for p in fs.ls(self._checkpoints, detail=False)
            if posixpath.basename(p.rstrip("/")).startswith("step-")
        )
        for old in existing[:-_KEEP]:
            fs.rm(f"{self._checkpoints}/{old}", recursive=True)

    def _remote_steps(self) -> list[str]:
        """The names of the checkpoint directories in storage, oldest first."""
        fs = self._fs
        fs.invalidate_cache(self._checkpoints)
        if not fs.exists(self._checkpoints):
            return []
        names = (posixpath.basename(p.rstrip("/")) for p in fs.ls(self._checkpoints, detail=False))
        return sorted(name for name in names if name.startswith("step-"))

    def _recorded_hash(self) -> str | None:
        path = f"{self._root}/{_TRAINING_HASH}"
        if not self._fs.exists(path):
            return None
        return bytes(self._fs.cat_file(path)).decode().strip() or None
