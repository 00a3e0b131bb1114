"""The README's commands against a served model, run as written.

Every fenced `bash` block of the README that talks to the service (it calls `curl`) runs in
bash, from a folder whose `.bespoke` state says the customization serves at a real
`bentoml serve` of a tiny version. `curl` is wrapped to fail on an HTTP error (a 415 for a
missing content type, say): the README's `-s` alone would hide it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from served_process import REPO_ROOT, Served, start_service

from bespoke_operator.api import ModelCustomization, ModelCustomizationStatus
from bespoke_operator.runtimes.local.state import CustomizationState

pytestmark = pytest.mark.slow

README = REPO_ROOT / "README.md"
FLAGSHIP = REPO_ROOT / "examples" / "support-tickets" / "customization.yaml"
_FENCE = re.compile(r"^(?P<indent> *)```bash\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)
#: Every curl the blocks run fails on an HTTP status of 400 or more, with the body on stderr.
_STRICT_CURL = 'curl() { command curl --fail-with-body "$@"; }\n'


def service_blocks(text: str) -> list[str]:
    """The README's fenced bash blocks that call the service, dedented."""
    blocks = []
    for match in _FENCE.finditer(text):
        indent = len(match["indent"])
        body = "".join(line[indent:] for line in match["body"].splitlines(keepends=True))
        if re.search(r"\bcurl\b", body):
            blocks.append(body)
    return blocks


def test_the_readme_has_service_blocks() -> None:
    assert service_blocks(README.read_text(encoding="utf-8")), "no README block calls curl"


@pytest.fixture(scope="module")
def served(tiny_version: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    env = {
        "BESPOKE_MODEL_URI": str(tiny_version),
        "BESPOKE_VERSION": "1",
        "BESPOKE_TORCH_THREADS": "1",
        "BESPOKE_NAMESPACE": "local",
        "BESPOKE_CUSTOMIZATION": "support-tickets",
    }
    service = start_service(env, tmp_path_factory.mktemp("readme-serve"))
    try:
        service.wait_until("/readyz", limit_seconds=240)
        yield service
    finally:
        service.stop()


def _serving_state(folder: Path, endpoint: str) -> None:
    """`.bespoke/` in `folder` as `bespoke run --keep-serving` leaves it, serving at `endpoint`."""
    document = yaml.safe_load(FLAGSHIP.read_text(encoding="utf-8"))
    mc = ModelCustomization.model_validate(document)
    status = ModelCustomizationStatus(phase="Ready", production_version=1, endpoint=endpoint)
    state = CustomizationState(folder / ".bespoke", mc.metadata.name)
    state.save_customization(mc.model_copy(update={"status": status}))


@pytest.mark.parametrize("block", service_blocks(README.read_text(encoding="utf-8")))
def test_readme_block_runs_as_written(served: Served, tmp_path: Path, block: str) -> None:
    _serving_state(tmp_path, served.url)
    bash = shutil.which("bash")
    assert bash is not None
    # `bespoke` and `python3` of this environment first, as in the README's activated .venv.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    result = subprocess.run(
        [bash, "-c", "set -euo pipefail\n" + _STRICT_CURL + block],
        cwd=tmp_path,
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{block}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    if "/classify" in block:
        assert '"label"' in result.stdout
    if "/metrics" in block:
        assert "bespoke_drift_window_rows" in result.stdout
