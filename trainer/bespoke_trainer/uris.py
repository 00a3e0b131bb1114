"""Resolve the URI forms of the API (file, plain path, pvc, s3, hf) to local files."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["REMOTE_SCHEMES", "HubRef", "is_remote", "local_path", "parse_hub", "pvc_root"]


@dataclass(frozen=True)
class HubRef:
    """A model on the Hugging Face Hub (or in the local hub cache)."""

    repo_id: str


def pvc_root() -> Path:
    """Where `pvc://claim/...` volumes are mounted in the pod."""
    return Path(os.environ.get("BESPOKE_PVC_ROOT", "/mnt/pvc"))


def parse_hub(uri: str) -> HubRef | None:
    """Return the hub reference of an `hf://org/name` URI, else None."""
    if uri.startswith("hf://"):
        return HubRef(repo_id=uri.removeprefix("hf://").strip("/"))
    return None


# Object stores reached through fsspec; `memory://` is fsspec's in-process store (tests).
REMOTE_SCHEMES = ("s3", "gs", "gcs", "az", "abfs", "memory")


def is_remote(uri: str) -> bool:
    """Whether the URI lives in object storage (not a mounted or local path)."""
    return uri.split("://", 1)[0] in REMOTE_SCHEMES if "://" in uri else False


def local_path(uri: str, *, cache_dir: Path | None = None) -> Path:
    """Map a URI to a local path, downloading object-storage URIs into `cache_dir`.

    Raises `OSError` (or fsspec's errors, which derive from it) when a download fails.
    """
    if uri.startswith("file://"):
        return Path(uri.removeprefix("file://"))
    if uri.startswith("pvc://"):
        return pvc_root() / uri.removeprefix("pvc://")
    if is_remote(uri):
        return _download(uri, cache_dir)
    if "://" in uri:
        raise ValueError(f"unsupported URI scheme in {uri!r}")
    return Path(uri)


def _download(uri: str, cache_dir: Path | None) -> Path:
    import fsspec  # only object-storage runs need it

    # Credentials come from the environment (AWS_ACCESS_KEY_ID, ..., AWS_ENDPOINT_URL).
    options: dict[str, Any] = {}
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("S3_ENDPOINT_URL")
    if endpoint:
        options["client_kwargs"] = {"endpoint_url": endpoint}
    fs, path = fsspec.core.url_to_fs(uri, **options)
    root = cache_dir or Path(tempfile.gettempdir()) / "bespoke-cache"
    target = root / hashlib.sha256(uri.encode()).hexdigest()[:16] / Path(path).name
    target.parent.mkdir(parents=True, exist_ok=True)
    if fs.isdir(path):
        fs.get(path.rstrip("/") + "/", str(target), recursive=True)
    else:
        fs.get(path, str(target))
    return target
