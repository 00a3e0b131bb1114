"""`bespoke run`: the whole loop on one machine, with progress and a summary at the end."""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, Final, Literal

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bespoke_operator import kube_yaml
from bespoke_operator.api import ModelCustomization, ModelVersion, ModelVersionStatus
from bespoke_operator.cli.traffic import load_texts, replay
from bespoke_operator.cli.validate import load_file
from bespoke_operator.errors import (
    MissingLocationError,
    ResourceValidationError,
    RunFailedError,
    StateUnreadableError,
    UpdateRefusedError,
)
from bespoke_operator.reconcile import Event
from bespoke_operator.reconcile.serving import unservable
from bespoke_operator.runtimes.local.runtime import (
    Admission,
    LocalRuntime,
    Step,
    prepare,
)
from bespoke_operator.runtimes.local.state import CustomizationState

__all__ = [
    "ExitCode",
    "OutputFormat",
    "RunOptions",
    "print_customizations",
    "print_status",
    "print_versions",
    "rollback",
    "run",
    "stop",
]

Traffic = Literal["none", "reference", "drifted"]
#: `table` for people; `json` and `yaml` print a kubectl-style List of the resources.
OutputFormat = Literal["table", "json", "yaml"]


class ExitCode(IntEnum):
    """The `bespoke` command's exit codes (documented in docs/cli.md; scripts rely on them)."""

    OK = 0
    #: The command could not do what was asked: invalid file, missing or unreadable state,
    #: a refused rollback, a failed command.
    FAILED = 1
    #: Wrong arguments or options (click's own code for a usage error).
    USAGE = 2
    #: `bespoke run` ended with the customization not Ready (nor rolling out): Failed,
    #: Training, AwaitingApproval, Pending or Degraded.
    NOT_READY = 3


_POLL_SECONDS: Final = 1.0
#: With reference traffic, this many drift readings without drift end the run.
_QUIET_READINGS: Final = 3


@dataclass(frozen=True)
class RunOptions:
    """What `bespoke run` was asked to do."""

    file: Path
    state_dir: Path
    traffic: Traffic = "none"
    keep_serving: bool = False
    timeout_seconds: float = 3600.0


@dataclass
class _Progress:
    """What the loop has seen so far (for the stop condition and the summary)."""

    log_offsets: dict[Path, int] = field(default_factory=dict)
    readings: set[object] = field(default_factory=set)
    drift_seen: bool = False
    traffic_thread: threading.Thread | None = None
    stop_traffic: threading.Event = field(default_factory=threading.Event)


def _load(options: RunOptions) -> tuple[dict[str, Any], CustomizationState]:
    try:
        resources = load_file(options.file)
    except ResourceValidationError as exc:
        raise RunFailedError("\n".join(str(p) for p in exc.problems)) from exc
    customizations = [r for r in resources if isinstance(r, ModelCustomization)]
    if len(customizations) != 1:
        raise RunFailedError(f"{options.file}: expected exactly one ModelCustomization")
    name = customizations[0].metadata.name
    raw = next(
        d
        for d in kube_yaml.load_all(options.file.read_text())
        if d and d.get("kind") == "ModelCustomization"
    )
    state = CustomizationState(options.state_dir.resolve(), name)
    try:
        document = prepare(raw, options.file.parent.resolve(), state)
    except MissingLocationError as exc:
        lines = (f"{options.file}: {line}" for line in str(exc).splitlines())
        raise RunFailedError("\n".join(lines)) from exc
    try:
        state.dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        # A file where a folder should be, or no permission: say so before anything starts.
        raise RunFailedError(
            f"--state-dir {options.state_dir}: cannot keep state in {state.dir} "
            f"({exc.strerror or exc}) — pass a folder you can write to (it is created if missing)"
        ) from exc
    return document, state


def _admit(options: RunOptions, runtime: LocalRuntime, document: dict[str, Any]) -> Admission:
    try:
        return runtime.admit(document)
    except UpdateRefusedError as exc:
        # The API server's words for the same update, then what to do about it locally.
        lines = [f"{options.file}: spec{v.field_path}: {v.message}" for v in exc.violations]
        lines.append(
            f"{runtime.state.dir} keeps the versions of the customization as it was; to start "
            "over with this file, give it another metadata.name or use another --state-dir"
        )
        raise RunFailedError("\n".join(lines)) from exc


def _child_env() -> dict[str, str]:
    """Environment for the trainer and the server.

    One intra-op thread per process unless the user chose otherwise: the trainer and the server
    share the machine, and on a 2-core box torch's default of one thread per core ran the
    MiniLM trainer 3x slower (4 vs 12 samples/s) once anything else needed a core.
    """
    return {
        "PYTHONUNBUFFERED": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }


def run(options: RunOptions, console: Console, errors: Console) -> int:
    """Runs the lifecycle until served (and, with traffic, until the drift policy acted).

    Progress goes to `console`, problems to `errors` (stdout and stderr in the command).
    """
    try:
        document, state = _load(options)
        runtime = LocalRuntime(state, on_event=lambda e: _print_event(console, e), env=_child_env())
        admission = _admit(options, runtime, document)
    except (RunFailedError, StateUnreadableError) as exc:
        errors.print(str(exc), markup=False)
        return ExitCode.FAILED
    mc = admission.customization
    console.print(
        f"[bold]{'Resuming' if admission.resumed else 'Running'}[/] {mc.metadata.name} "
        f"(state in {state.dir})"
    )
    console.print(
        f"[dim]Artifacts go to {escape(str(state.artifacts))} (a local run's storage; "
        "spec.storage.uri applies on a cluster)[/]"
    )
    _report_pin(console, options, admission)
    progress = _Progress()
    _skip_earlier_logs(console, state, progress)
    deadline = time.monotonic() + options.timeout_seconds
    step: Step | None = None
    try:
        while time.monotonic() < deadline:
            step = runtime.step(read_drift=options.traffic != "none")
            _stream_trainer_logs(console, state, progress)
            if _finished(step, options, progress, console, runtime):
                break
            time.sleep(_POLL_SECONDS)
        else:
            errors.print(f"[yellow]Stopped after {options.timeout_seconds:.0f}s[/]")
    except KeyboardInterrupt:
        console.print("\n[yellow]Interrupted: stopping what this run started[/]")
    finally:
        progress.stop_traffic.set()
        if progress.traffic_thread is not None:
            progress.traffic_thread.join(timeout=10)
        runtime.stop_trainers()
        if not options.keep_serving:
            runtime.stop_serving()
    _summary(console, errors, runtime, options)
    status = runtime.customization().status
    if status is not None and status.phase in ("Ready", "RollingOut"):
        return ExitCode.OK
    return ExitCode.NOT_READY


def _report_pin(console: Console, options: RunOptions, admission: Admission) -> None:
    if admission.kept_pin is not None:
        console.print(
            f"Serving v{admission.kept_pin} as pinned by `bespoke rollback` "
            f"(kept while {options.file} is unchanged)",
            markup=False,
        )
    if admission.dropped_pin is not None:
        n = admission.dropped_pin
        console.print(
            f"[yellow]{escape(str(options.file))} changed since `bespoke rollback` pinned v{n}: "
            f"the file decides again (set spec.serving.pinnedVersion: {n} in it to keep serving "
            f"v{n})[/]"
        )


def _skip_earlier_logs(console: Console, state: CustomizationState, progress: _Progress) -> None:
    """Starts each existing trainer log after its last complete line: those were shown before."""
    earlier = 0
    for run in state.runs():
        if run.log.exists():
            data = run.log.read_bytes()
            progress.log_offsets[run.log] = data.rfind(b"\n") + 1
            earlier += 1
    if earlier:
        console.print(
            f"[dim]Earlier trainer logs ({earlier} attempt(s)) stay in "
            f"{state.dir / 'runs'}/*/trainer.log[/]"
        )


def _finished(
    step: Step,
    options: RunOptions,
    progress: _Progress,
    console: Console,
    runtime: LocalRuntime,
) -> bool:
    status = step.decision.status
    # Drift is recorded before anything else: the pass that sees it may also start a retrain.
    if step.observed.drift is not None:
        progress.readings.add(step.observed.drift.checked_at)
    progress.drift_seen |= status.drift is not None and status.drift.detected
    if status.phase == "Failed":
        return True
    if _retrain_decided(runtime) and (status.phase == "Ready" or not options.keep_serving):
        # Without --keep-serving the run stops every server as it ends: rolling the new version
        # out only to stop it would cost a server start (half a minute here) and show nothing.
        return True
    if status.phase != "Ready":
        return False
    if options.traffic == "none" or not runtime.customization().spec.serving.enabled:
        return True  # with serving disabled there is no server for traffic to reach
    if progress.traffic_thread is None and status.endpoint:
        _start_traffic(options, status.endpoint, progress, console)
    if options.traffic == "reference":
        return len(progress.readings) >= _QUIET_READINGS
    if runtime.customization().spec.monitoring.on_drift.action == "alert":
        return progress.drift_seen
    return False  # retrain policy: done once the drift-triggered version is decided (above)


def _retrain_decided(runtime: LocalRuntime) -> bool:
    """Whether a drift-triggered version has been trained and its gates decided."""
    decided = ("Promoted", "Rejected", "Failed", "AwaitingApproval", "Retired")
    return any(
        v.spec.trigger == "Drift" and v.status is not None and v.status.phase in decided
        for v in runtime.state.versions()
    )


def _start_traffic(
    options: RunOptions, endpoint: str, progress: _Progress, console: Console
) -> None:
    source = options.file.parent / "traffic" / f"{options.traffic}.jsonl"
    if not source.exists():
        console.print(f"[yellow]No {source}: running without traffic[/]")
        progress.traffic_thread = threading.Thread(target=lambda: None)
        return
    try:
        texts = load_texts(source)
    except (OSError, ValueError) as exc:
        # The model is served by now: report the traffic file and keep the run going without it.
        console.print(f"[yellow]{escape(f'{source}: {exc}')} — running without traffic[/]")
        progress.traffic_thread = threading.Thread(target=lambda: None)
        return
    console.print(f"Replaying {options.traffic} traffic from {source} to {endpoint}")
    progress.traffic_thread = threading.Thread(
        target=replay,
        args=(endpoint, texts),
        kwargs={"rate": 4.0, "duration": options.timeout_seconds, "stop": progress.stop_traffic},
        daemon=True,
    )
    progress.traffic_thread.start()


def _stream_trainer_logs(console: Console, state: CustomizationState, progress: _Progress) -> None:
    """Echoes the trainer's progress lines (step, loss, metric, throughput, ETA) as they come."""
    for run in state.runs():
        if not run.log.exists():
            continue
        offset = progress.log_offsets.get(run.log, 0)
        with run.log.open("rb") as handle:
            handle.seek(offset)
            chunk = handle.read()
        complete = chunk.rfind(b"\n") + 1
        progress.log_offsets[run.log] = offset + complete
        for line in chunk[:complete].decode("utf-8", "replace").splitlines():
            if " bespoke_trainer" in line and (" INFO " in line or " ERROR " in line):
                text = line.split(": ", 1)[-1]
                console.print(
                    f"  [dim]v{run.version} trainer[/] {text}", markup=True, highlight=False
                )


def _print_event(console: Console, event: Event) -> None:
    colour = "red" if event.type == "Warning" else "green"
    console.print(f"[{colour}]{event.reason}[/]: {event.message}", highlight=False)


def _summary(console: Console, errors: Console, runtime: LocalRuntime, options: RunOptions) -> None:
    mc = runtime.customization()
    console.print()
    print_versions(console, runtime.state.versions())
    status = mc.status
    if status is None:
        return
    console.print(
        f"Phase: [bold]{status.phase}[/]  production version: {status.production_version}"
    )
    if status.production_version and not mc.spec.serving.enabled:
        console.print(
            f"v{status.production_version} is the production version; serving is disabled in "
            f"{escape(str(options.file))}, so nothing is served (set spec.serving.enabled: true "
            "to serve it)"
        )
    if status.rollout is not None and not options.keep_serving:
        console.print(
            f"v{status.rollout.version} is promoted; the next `bespoke run` rolls it out "
            "(add --keep-serving to wait for it and keep it up)"
        )
    if status.endpoint and options.keep_serving:
        console.print(
            f"Serving at {status.endpoint}  (POST /classify, GET /metrics, GET /drift); "
            f"stop it with `bespoke stop {mc.metadata.name}`"
        )
    if status.drift is not None:
        drift = status.drift
        console.print(
            f"Drift: share {drift.share} over {drift.window_rows} requests "
            f"({'detected' if drift.detected else 'none'})"
        )
    stalled = next(
        (c for c in status.conditions if c.type == "Stalled" and c.status == "True"), None
    )
    if stalled is not None:
        errors.print(f"[red]Stalled ({stalled.reason})[/]: {stalled.message}", markup=True)
    if status.production_version:
        card = (
            runtime.state.artifacts / "versions" / f"v{status.production_version}" / "model-card.md"
        )
        console.print(f"Model card: {card}")
    name, file = mc.metadata.name, options.file
    if status.phase == "Failed":
        # Rerunning with traffic or rolling back does not help a version that failed: its record
        # says why, and a corrected file trains a new one.
        hint = (
            f"Next: `bespoke versions {name}` shows why v{status.latest_version} failed; "
            f"fix {file} and run it again"
        )
    elif status.phase in ("Ready", "RollingOut"):
        hint = (
            f"Next: `bespoke versions {name}`, "
            f"`bespoke run {file} --traffic drifted --keep-serving`, "
            f"`bespoke rollback {name} VERSION`"
        )
    elif status.phase == "AwaitingApproval" and status.candidate_version is not None:
        hint = f"Next: `bespoke rollback {name} {status.candidate_version}` approves and serves it"
    else:
        hint = f"Next: `bespoke run {file}` again continues where this run stopped"
    console.print(hint, markup=False)


def _print_list(console: Console, items: list[dict[str, Any]], output: OutputFormat) -> None:
    """The resources as `kubectl get -o json|yaml` prints them: a `List` with `items`."""
    document = {"apiVersion": "v1", "kind": "List", "items": items}
    text = json.dumps(document, indent=2) if output == "json" else kube_yaml.dump(document)
    # No markup, highlighting or emoji codes: `f:label:` in managedFields is not an emoji.
    console.print(text.rstrip("\n"), markup=False, highlight=False, emoji=False, soft_wrap=True)


def print_versions(
    console: Console, versions: list[ModelVersion], output: OutputFormat = "table"
) -> None:
    """The registry: one row per version with its metrics and gate verdicts."""
    if output != "table":
        _print_list(console, [v.model_dump(mode="json", by_alias=True) for v in versions], output)
        return
    table = Table(title="Versions")
    for column in ("version", "trigger", "phase", "metric", "gates", "reason"):
        table.add_column(column)
    for version in versions:
        status = version.status
        gates = " ".join(
            f"{'✓' if g.passed else '✗'}{g.name}" for g in (status.gates if status else [])
        )
        table.add_row(
            f"v{version.spec.version}",
            version.spec.trigger,
            (status.phase if status else None) or "Pending",
            (status.headline_metric if status else None) or "",
            gates,
            (status.reason if status else None) or "",
        )
    console.print(table)


def print_status(
    console: Console, state_dir: Path, name: str | None, output: OutputFormat = "table"
) -> int:
    """One row per customization in the state directory (or the one named).

    The endpoint goes on a line of its own under the table, whole: a table cell would cut it
    at 80 columns, and it is there to be copied.
    """
    names = (
        [name]
        if name
        else sorted(p.name for p in state_dir.glob("*") if (p / "customization.json").exists())
    )
    if not names:
        console.print(f"No customizations in {state_dir}", markup=False)
        return ExitCode.FAILED
    found = []
    for each in names:
        mc = CustomizationState(state_dir, each).load_customization()
        if mc is None:
            console.print(f"No customization {each} in {state_dir}", markup=False)
            return ExitCode.FAILED
        found.append(mc)
    print_customizations(console, found, output)
    return ExitCode.OK


def print_customizations(
    console: Console, found: list[ModelCustomization], output: OutputFormat = "table"
) -> None:
    """The customizations as `bespoke status` and `bespoke get` show them (see print_status)."""
    if output != "table":
        _print_list(console, [mc.model_dump(mode="json", by_alias=True) for mc in found], output)
        return
    table = Table(title="Customizations")
    for column in ("name", "phase", "production", "metric", "drift"):
        table.add_column(column)
    notes = []
    for mc in found:
        status = mc.status
        table.add_row(
            mc.metadata.name,
            (status.phase if status else None) or "",
            str(status.production_version or "") if status else "",
            (status.headline_metric if status else None) or "",
            status.drift.share if status and status.drift else "",
        )
        if status is None:
            continue
        ready = next((c for c in status.conditions if c.type == "Ready"), None)
        if status.endpoint:
            notes.append(f"{mc.metadata.name}: serving at {status.endpoint}")
        elif ready is not None and ready.status != "True" and ready.message:
            notes.append(f"{mc.metadata.name}: {ready.message}")
    console.print(table)
    for note in notes:
        console.print(note, markup=False, highlight=False, soft_wrap=True)


#: Decisions of a version that passed its gates; only such a version is offered for rollback.
_SERVABLE_PHASES: Final = ("Promoted", "Retired", "AwaitingApproval")
_PIN_RULE: Final = (
    "`bespoke run` of the same file keeps the pin; once the file is edited, its own "
    "spec.serving.pinnedVersion decides (set it there to keep a pin)"
)


def _servable(version: ModelVersion) -> bool:
    """Passed its gates, and can be served (the core's rule for a pin)."""
    status = version.status
    return status is not None and status.phase in _SERVABLE_PHASES and unservable(status) is None


def rollback(console: Console, errors: Console, state_dir: Path, name: str, version: int) -> int:
    """Pins `version` (see `_PIN_RULE`) and redeploys it if serving; only a version that passed
    its gates and has artifacts is accepted."""
    state = CustomizationState(state_dir, name)
    mc = state.load_customization()
    if mc is None:
        errors.print(f"No customization {name} in {state_dir}", markup=False)
        return ExitCode.FAILED
    versions = state.versions()
    chosen = next((v for v in versions if v.spec.version == version), None)
    servable = ", ".join(f"v{v.spec.version}" for v in versions if _servable(v)) or "none yet"
    if chosen is None or not _servable(chosen):
        if chosen is None:
            why = f"{name} has no version {version}"
        else:
            record = chosen.status
            phase = (record.phase if record else None) or "Pending"
            reason = f" ({record.reason})" if record and record.reason else ""
            why = f"v{version} cannot be served: it is {phase}{reason}"
            if problem := unservable(record or ModelVersionStatus()):
                why += f" and {problem}"
            else:
                why += (
                    ": it did not pass its gates (to serve it anyway, set "
                    f"spec.serving.pinnedVersion: {version} in the file)"
                )
        errors.print(
            f"{why}. Versions that can be served: {servable} (`bespoke versions {name}`)",
            markup=False,
        )
        return ExitCode.FAILED
    runtime = LocalRuntime(state, on_event=lambda e: _print_event(console, e))
    runtime.pin(version)
    if state.serving() is None:
        console.print(
            f"Pinned v{version}: the next `bespoke run` serves it; {_PIN_RULE}", markup=False
        )
        return ExitCode.OK
    console.print(f"Pinned v{version}; {_PIN_RULE}", markup=False)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status = runtime.step().decision.status
        if status.phase == "Ready" and status.production_version == version:
            console.print(f"v{version} is serving at {status.endpoint}", markup=False)
            return ExitCode.OK
        time.sleep(_POLL_SECONDS)
    errors.print(f"[red]v{version} did not become ready; see {state.serving_log}[/]")
    return ExitCode.FAILED


def stop(console: Console, state_dir: Path, name: str) -> int:
    """Stops the serving process and any trainer of a customization."""
    state = CustomizationState(state_dir, name)
    if state.load_customization() is None:
        console.print(f"No customization {name} in {state_dir}", markup=False)
        return ExitCode.FAILED
    LocalRuntime(state).stop()
    console.print(f"Stopped {name}", markup=False)
    return ExitCode.OK
