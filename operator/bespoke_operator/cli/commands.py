"""The `bespoke` command: validate files, run the loop locally, inspect and steer it.

Exit codes (docs/cli.md): 0 done, 1 the command failed (bad file, missing state, refused),
2 usage error (click's), 3 the customization is not Ready at the end of `bespoke run`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from importlib.metadata import version as _distribution_version
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

import typer
from rich.console import Console

from bespoke_operator.cli import cluster as cluster_commands
from bespoke_operator.cli import manifests
from bespoke_operator.cli import run as local_run
from bespoke_operator.cli.run import ExitCode, OutputFormat
from bespoke_operator.cli.traffic import load_texts, replay
from bespoke_operator.cli.validate import load_file
from bespoke_operator.errors import ResourceValidationError, StateUnreadableError
from bespoke_operator.runtimes.local.state import CustomizationState

__all__ = ["app", "main"]

app = typer.Typer(
    name="bespoke",
    help="Bespoke: take a pre-trained model to a gated, served, monitored customized model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


def _print_version(wanted: bool) -> None:
    if wanted:
        _out.print(f"bespoke {_distribution_version('bespoke')}", markup=False)
        raise typer.Exit(code=ExitCode.OK)


@app.callback()
def _bespoke(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Bespoke: take a pre-trained model to a gated, served, monitored customized model."""


@app.command()
def validate(
    files: Annotated[
        list[Path],
        typer.Argument(help="Resource files (YAML) to check.", show_default=False, metavar="FILE"),
    ],
) -> None:
    """Check ModelCustomization / ModelVersion files; report every problem with its field path."""
    failed = 0
    for path in files:
        try:
            resources = load_file(path)
        except ResourceValidationError as exc:
            failed += 1
            for problem in exc.problems:
                _out.print(str(problem), markup=False)
            continue
        names = ", ".join(f"{r.kind}/{r.metadata.name}" for r in resources)
        _out.print(f"{path}: ok ({names})", markup=False)
    if failed:
        _err.print(f"{failed} of {len(files)} file(s) invalid", markup=False)
        raise typer.Exit(code=ExitCode.FAILED)


@app.command()
def crds(
    root: Annotated[
        Path, typer.Option(help="Repository root to write crds/, the chart copy and docs/ under.")
    ] = Path("."),
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 if a generated file is stale.")
    ] = False,
) -> None:
    """Generate the CRDs and the API reference from the API models."""
    if check:
        outdated = manifests.stale(root)
        for path in outdated:
            _out.print(f"{path}: differs from the API models — run `make manifests`", markup=False)
        if outdated:
            raise typer.Exit(code=ExitCode.FAILED)
        _out.print("Generated files are current", markup=False)
        return
    changed = manifests.write_all(root)
    for path in changed:
        _out.print(f"Wrote {path}", markup=False)
    if not changed:
        _out.print("Generated files are current", markup=False)


_STATE_DIR = typer.Option(help="Where local runs keep versions, artifacts and logs.")
_OUTPUT = typer.Option(
    "--output",
    "-o",
    help="table for people; json or yaml for scripts: a kubectl-style List of the resources "
    "(schema: docs/cli.md).",
)


@contextmanager
def _readable_state() -> Iterator[None]:
    """A state file that cannot be read back is one line on stderr, not a traceback."""
    try:
        yield
    except StateUnreadableError as exc:
        _err.print(str(exc), markup=False)
        raise typer.Exit(code=ExitCode.FAILED) from exc


@app.command()
def run(
    file: Annotated[
        Path, typer.Argument(help="A ModelCustomization file.", show_default=False, metavar="FILE")
    ],
    state_dir: Annotated[Path, _STATE_DIR] = Path(".bespoke"),
    traffic: Annotated[
        local_run.Traffic,
        typer.Option(help="Replay the example's traffic once served, until drift is handled."),
    ] = "none",
    keep_serving: Annotated[
        bool, typer.Option("--keep-serving", help="Leave the service running at the end.")
    ] = False,
    timeout: Annotated[
        float, typer.Option(help="Give up after this many seconds.", min=1)
    ] = 3600.0,
) -> None:
    """Run the whole loop on this machine: train, gate, serve, watch drift, retrain."""
    options = local_run.RunOptions(file, state_dir, traffic, keep_serving, timeout)
    with _readable_state():
        code = local_run.run(options, _out, _err)
    raise typer.Exit(code=code)


@app.command()
def status(
    name: Annotated[
        str | None, typer.Argument(help="Customization name (all when omitted).", metavar="NAME")
    ] = None,
    state_dir: Annotated[Path, _STATE_DIR] = Path(".bespoke"),
    output: Annotated[OutputFormat, _OUTPUT] = "table",
) -> None:
    """Show local customizations: phase, production version, metric, drift, endpoint."""
    with _readable_state():
        code = local_run.print_status(_out, state_dir, name, output)
    raise typer.Exit(code=code)


_KUBECONFIG = typer.Option(
    help="Kubeconfig for cluster commands (default: $KUBECONFIG, else ~/.kube/config).",
    show_default=False,
)
_NAMESPACE = typer.Option(
    "--namespace", "-n", help="Namespace (default: the kubeconfig context's).", show_default=False
)

_T = TypeVar("_T")


def _on_cluster(call: Coroutine[Any, Any, _T]) -> _T:
    """Runs a cluster call; a refusal or an unreachable server is one line on stderr."""
    try:
        return asyncio.run(call)
    except cluster_commands.ClusterError as exc:
        _err.print(str(exc), markup=False)
        raise typer.Exit(code=ExitCode.FAILED) from exc


@app.command()
def versions(
    name: Annotated[
        str, typer.Argument(help="Customization name.", show_default=False, metavar="NAME")
    ],
    state_dir: Annotated[Path, _STATE_DIR] = Path(".bespoke"),
    output: Annotated[OutputFormat, _OUTPUT] = "table",
    cluster: Annotated[
        bool, typer.Option("--cluster", help="The cluster's versions (kubeconfig), not local.")
    ] = False,
    kubeconfig: Annotated[Path | None, _KUBECONFIG] = None,
    namespace: Annotated[str | None, _NAMESPACE] = None,
) -> None:
    """List a customization's versions with metrics and gate verdicts (local, or --cluster)."""
    if cluster:
        target = cluster_commands.Target(kubeconfig, namespace)
        found = _on_cluster(cluster_commands.versions(target, name))
        where = f"namespace {target.resolved_namespace()}"
    else:
        with _readable_state():
            found = CustomizationState(state_dir, name).versions()
        where = str(state_dir)
    if not found:
        _err.print(f"No versions of {name} in {where}", markup=False)
        raise typer.Exit(code=ExitCode.FAILED)
    local_run.print_versions(_out, found, output)


@app.command()
def get(
    name: Annotated[
        str | None, typer.Argument(help="Customization name (all when omitted).", metavar="NAME")
    ] = None,
    kubeconfig: Annotated[Path | None, _KUBECONFIG] = None,
    namespace: Annotated[str | None, _NAMESPACE] = None,
    output: Annotated[OutputFormat, _OUTPUT] = "table",
) -> None:
    """Show a cluster's customizations, as `bespoke status` shows local ones."""
    target = cluster_commands.Target(kubeconfig, namespace)
    found = _on_cluster(cluster_commands.customizations(target, name))
    if not found:
        _err.print(f"No customizations in namespace {target.resolved_namespace()}", markup=False)
        raise typer.Exit(code=ExitCode.FAILED)
    local_run.print_customizations(_out, found, output)


@app.command()
def approve(
    name: Annotated[
        str, typer.Argument(help="Customization name.", show_default=False, metavar="NAME")
    ],
    version: Annotated[
        int,
        typer.Argument(help="Version to approve.", show_default=False, min=1, metavar="VERSION"),
    ],
    kubeconfig: Annotated[Path | None, _KUBECONFIG] = None,
    namespace: Annotated[str | None, _NAMESPACE] = None,
) -> None:
    """Approve a version on a cluster (annotation bespoke.dev/approved=true; needs `patch` on
    modelversions). In Git, list it in spec.evaluation.approvedVersions instead."""
    target = cluster_commands.Target(kubeconfig, namespace)
    before = _on_cluster(cluster_commands.approve(target, name, version))
    phase = (before.status.phase if before.status else None) or "Pending"
    then = (
        "the operator promotes it now"
        if phase == "AwaitingApproval"
        else f"it is {phase}: promoted once it passes its gates"
        if phase not in ("Promoted", "Retired")
        else f"it is already {phase}"
    )
    _out.print(f"Approved {before.metadata.name}: {then}", markup=False)


@app.command()
def rollback(
    name: Annotated[
        str, typer.Argument(help="Customization name.", show_default=False, metavar="NAME")
    ],
    version: Annotated[
        int, typer.Argument(help="Version to serve.", show_default=False, min=1, metavar="VERSION")
    ],
    state_dir: Annotated[Path, _STATE_DIR] = Path(".bespoke"),
) -> None:
    """Serve an earlier version that passed its gates (on a cluster: spec.serving.pinnedVersion).

    Rerunning the same file with `bespoke run` keeps the pin; once the file is edited, its own
    spec.serving.pinnedVersion decides (set it there to keep a pin).
    """
    with _readable_state():
        code = local_run.rollback(_out, _err, state_dir, name, version)
    raise typer.Exit(code=code)


@app.command()
def stop(
    name: Annotated[
        str, typer.Argument(help="Customization name.", show_default=False, metavar="NAME")
    ],
    state_dir: Annotated[Path, _STATE_DIR] = Path(".bespoke"),
) -> None:
    """Stop a local customization's serving process and trainers."""
    with _readable_state():
        code = local_run.stop(_out, state_dir, name)
    raise typer.Exit(code=code)


#: The flagship example of a checkout (the package is installed editable from it).
_CHECKOUT_EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "support-tickets"


def _example_dir(given: Path | None) -> Path:
    """The folder with traffic/: the one given, else the flagship's here or in this checkout."""
    if given is not None:
        return given
    for candidate in (Path("examples/support-tickets"), _CHECKOUT_EXAMPLE):
        if (candidate / "traffic").is_dir():
            return candidate
    _err.print(
        "No example traffic here: pass --example-dir, a folder with traffic/PROFILE.jsonl "
        "(examples/support-tickets in a Bespoke checkout)",
        markup=False,
    )
    raise typer.Exit(code=ExitCode.FAILED)


def _service_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


@app.command("traffic")
def traffic_command(
    url: Annotated[
        str, typer.Argument(help="Service URL, e.g. http://127.0.0.1:3000.", metavar="URL")
    ],
    profile: Annotated[
        str, typer.Option(help="Traffic file name under --example-dir/traffic/ (no suffix).")
    ] = "reference",
    example_dir: Annotated[
        Path | None,
        typer.Option(
            help="Example with a traffic/ folder (default: examples/support-tickets here, else "
            "in the Bespoke checkout this command runs from).",
            show_default=False,
        ),
    ] = None,
    rate: Annotated[float, typer.Option(help="Requests per second.", min=0.1, max=200)] = 5.0,
    duration: Annotated[float, typer.Option(help="Seconds to run.", min=1, max=3600)] = 60.0,
) -> None:
    """Replay example traffic against an endpoint (local or port-forwarded)."""
    if not _service_url(url):
        _err.print(
            f"{url} is not a service URL: pass http://HOST:PORT (`bespoke status` prints the "
            "endpoint of a local run)",
            markup=False,
        )
        raise typer.Exit(code=ExitCode.FAILED)
    folder = _example_dir(example_dir)
    source = folder / "traffic" / f"{profile}.jsonl"
    if not source.is_file():
        profiles = sorted(p.stem for p in (folder / "traffic").glob("*.jsonl"))
        choice = f"pick one of {', '.join(profiles)}" if profiles else "it has no profiles"
        _err.print(f"{source} does not exist: {choice} in {folder / 'traffic'}", markup=False)
        raise typer.Exit(code=ExitCode.FAILED)
    try:
        texts = load_texts(source)
    except (OSError, ValueError) as exc:
        _err.print(f"{source}: {exc}", markup=False)
        raise typer.Exit(code=ExitCode.FAILED) from exc
    stats = replay(url, texts, rate=rate, duration=duration)
    _out.print(
        f"Sent {stats.requests} requests ({stats.texts} texts), {stats.errors} errors; "
        f"labels: {dict(sorted(stats.labels.items()))}",
        markup=False,
    )
    raise typer.Exit(code=ExitCode.FAILED if stats.errors and not stats.texts else ExitCode.OK)


def main() -> None:
    """Console-script entry point."""
    app()
