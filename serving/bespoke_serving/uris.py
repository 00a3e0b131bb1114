"""Resolve the storage URIs of versions and base models to local directories."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import fsspec

__all__ = ["local_dir"]


def local_dir(uri: str, pvc_root: str, cache_dir: Path | None = None) -> Path:
    """A local directory holding what `uri` names; object storage is copied to a cache first."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(parsed.path if parsed.scheme else uri)
    if parsed.scheme == "pvc":
        # pvc://claim/path -> <root>/claim/path: the operator mounts each claim under the root.
        return Path(pvc_root) / parsed.netloc / parsed.path.lstrip("/")
    if parsed.scheme in ("s3", "gs", "gcs", "az", "abfs"):
        return _download(uri, cache_dir or Path(tempfile.gettempdir()) / "bespoke-cache")
    raise ValueError(
        f"unsupported URI scheme `{parsed.scheme}` in {uri!r}: use file://, a path, pvc:// or s3://"
    )


def _download(uri: str, cache_dir: Path) -> Path:
    target = cache_dir / hashlib.sha256(uri.encode()).hexdigest()[:16]
    if not (target / ".complete").exists():
        fs, root = fsspec.core.url_to_fs(uri)
        fs.get(root.rstrip("/") + "/", str(target) + "/", recursive=True)
        (target / ".complete").touch()
    return target
