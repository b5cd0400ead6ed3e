"""`history DEPLOYMENT`: which version served when, and why each change happened. Pure.

Sources, all as the controllers write them:
- `status.history` of the Deployment: the served intervals (version, from, to), the last 20;
- `status.rollbacks`: aborted canaries (version, reason, message, at), the last 10;
- `status.retraining`: the last retraining decision (run, causes, decidedAt, phase);
- the ModelVersion of each version (`spec.registeredModel` + `spec.version`): `status.promotedAt`, and its
  TrainingRun (`spec.source.trainingRunRef`), whose `mlops.dev/triggered-by` label and `mlops.dev/drift-*`,
  `mlops.dev/performance-*`, `mlops.dev/schedule-*`, `mlops.dev/new-data-*` annotations say what started it;
- the Deployment's Events (Serving, CanaryStarted, CanaryStep, CanaryCompleted, RolledBack, AliasMoved, ...),
  which the API server keeps only for its event TTL (1 h by default).
The first interval is the first version served; every later one began when a canary completed (the rollout
planner starts a new interval nowhere else).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..contract import (
    ANNOTATION_DRIFT_PREFIX,
    ANNOTATION_NEW_DATA_PREFIX,
    ANNOTATION_PERFORMANCE_PREFIX,
    ANNOTATION_RETRAINING_CAUSES,
    ANNOTATION_SCHEDULE_PREFIX,
    LABEL_TRIGGER,
)
from .lineage import training_run_of
from .style import Style

Obj = dict[str, Any]


@dataclass(frozen=True)
class Served:
    """One served interval and where its version came from."""

    version: int
    since: str
    until: str | None
    model_version: str | None
    training_run: str | None
    how: str  # first version, or canary completed
    origin: str  # trained by whom and why


@dataclass(frozen=True)
class Change:
    """One dated line of the timeline: from status (`source` status.*) or an Event."""

    at: str
    version: int | None
    reason: str
    message: str
    source: str
    warning: bool = False


@dataclass(frozen=True)
class History:
    """What a Deployment served, and the changes in time order."""

    name: str
    model: str | None
    selector: str  # alias 'production' or pinned version N
    served: list[Served]
    changes: list[Change]
    in_flight: str | None = None  # the canary (or shadow) rolling out now, if any


def _by_version(model_versions: list[Obj], model: str | None) -> dict[int, Obj]:
    return {
        int(mv["spec"]["version"]): mv
        for mv in model_versions
        if (mv.get("spec") or {}).get("registeredModel") == model and (mv.get("spec") or {}).get("version")
    }


def _annotations(obj: Obj, prefix: str) -> dict[str, str]:
    found = ((obj.get("metadata") or {}).get("annotations") or {}).items()
    return {k.removeprefix(prefix): v for k, v in found if k.startswith(prefix)}


EVIDENCE_PREFIXES = {
    "drift": ANNOTATION_DRIFT_PREFIX,
    "performance": ANNOTATION_PERFORMANCE_PREFIX,
    "schedule": ANNOTATION_SCHEDULE_PREFIX,
    "newData": ANNOTATION_NEW_DATA_PREFIX,
}


def _figure(text: str | None) -> str:
    # Annotations hold str(float): shown with three decimals like every other figure of the plugin.
    try:
        return f"{float(text):.3f}" if text is not None and "." in text else text or "?"
    except ValueError:
        return text or "?"


def _evidence(cause: str, a: dict[str, str]) -> str:
    """One cause with the figures planning/retraining.py wrote beside it."""
    if cause == "drift":
        score = f"{a.get('method', '?')} {_figure(a.get('score'))} on v{a.get('version', '?')}"
        return f"drift in {a.get('feature', '?')} ({score})"
    if cause == "performance":
        return f"performance: {a.get('metric', '?')} {_figure(a.get('value'))} over {a.get('labels', '?')} labels"
    if cause == "schedule":
        return f"schedule {a.get('cron', '?')} {a.get('time-zone', '')} (fire {a.get('fire-time', '?')})"
    return f"new data in {a.get('dataset', '?')} ({a.get('version', '?')[:19]})"


def run_cause(run: Obj) -> str:
    """Why a TrainingRun exists: 'retraining on' its causes with their evidence, or 'applied by hand'."""
    labels = (run.get("metadata") or {}).get("labels") or {}
    annotations = (run.get("metadata") or {}).get("annotations") or {}
    causes = [
        c for c in (annotations.get(ANNOTATION_RETRAINING_CAUSES) or labels.get(LABEL_TRIGGER) or "").split(",") if c
    ]
    if not causes:
        return "applied by hand"  # no mlops.dev/triggered-by label: the operator did not create it
    evidence = []
    for cause in causes:
        prefix = EVIDENCE_PREFIXES.get(cause)
        found = _annotations(run, prefix) if prefix else {}
        evidence.append(_evidence(cause, found) if found else cause)  # a run made by hand may carry only the label
    return "retraining on " + "; ".join(evidence)


def origin_of(mv: Obj | None, runs: dict[str, Obj]) -> tuple[str | None, str]:
    """(TrainingRun name, sentence) for the ModelVersion of a served version."""
    if mv is None:
        return None, "no ModelVersion object for this version in the namespace"
    run_name = training_run_of(mv, set(runs))
    if run_name is None:
        return None, f"ModelVersion {mv['metadata']['name']} applied without a TrainingRun"
    run = runs.get(run_name)
    if run is None:
        return run_name, f"trained by TrainingRun {run_name} (deleted since)"
    return run_name, f"trained by TrainingRun {run_name}, {run_cause(run)}"


def derive_history(deployment: Obj, model_versions: list[Obj], runs: list[Obj], events: list[Obj]) -> History:
    """The served intervals and the timeline of one Deployment; `events` are those whose object is it."""
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    model_spec = spec.get("model") or {}
    model = model_spec.get("registeredModel")
    pinned = model_spec.get("version")
    selector = f"pinned version {pinned}" if pinned else f"alias '{model_spec.get('alias')}'"
    versions = _by_version(model_versions, model)
    runs_by_name = {r["metadata"]["name"]: r for r in runs}
    served, changes = [], []
    for i, interval in enumerate(status.get("history") or []):
        version = int(interval["version"])
        mv = versions.get(version)
        run_name, origin = origin_of(mv, runs_by_name)
        how = f"first version served ({selector})" if i == 0 else "canary completed"
        name = mv["metadata"]["name"] if mv else None
        served.append(Served(version, interval["from"], interval.get("to"), name, run_name, how, origin))
        changes.append(Change(interval["from"], version, "Serving", f"{how}; {origin}", "status.history"))
    for rollback in status.get("rollbacks") or []:
        if rollback.get("at"):
            message = f"{rollback.get('reason')}: {rollback.get('message') or ''}".rstrip(": ")
            changes.append(Change(rollback["at"], rollback["version"], "RolledBack", message, "status.rollbacks", True))
    retraining = status.get("retraining") or {}
    if retraining.get("run") and retraining.get("decidedAt"):  # the last decision only: status keeps one
        causes = ", ".join(retraining.get("causes") or []) or "unknown cause"
        message = f"TrainingRun {retraining['run']} created ({causes}); now {retraining.get('phase') or 'unknown'}"
        changes.append(
            Change(retraining["decidedAt"], retraining.get("version"), "Retraining", message, "status.retraining")
        )
    for version, mv in versions.items():
        promoted = (mv.get("status") or {}).get("promotedAt")
        if promoted:
            alias = ((mv.get("spec") or {}).get("promotion") or {}).get("alias")
            message = f"ModelVersion {mv['metadata']['name']} promoted: '{alias}' names it"
            changes.append(Change(promoted, version, "Promoted", message, "ModelVersion status.promotedAt"))
    for event in events:
        at = event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp") or ""
        changes.append(
            Change(at, None, event.get("reason", ""), event.get("message", ""), "Event", event.get("type") == "Warning")
        )
    changes.sort(key=lambda c: (c.at, c.source == "Event"))
    in_flight = None
    if status.get("canaryVersion") is not None:
        canary = int(status["canaryVersion"])
        _, origin = origin_of(versions.get(canary), runs_by_name)
        since = f" since {status['stepStartedAt']}" if status.get("stepStartedAt") else ""
        step = int(status.get("step") or 0) + 1
        in_flight = f"canary v{canary} at {status.get('canaryWeight') or 0}%, step {step}{since}; {origin}"
    return History(deployment["metadata"]["name"], model, selector, served, changes, in_flight)


def _duration(since: str, until: str | None, now: datetime) -> str:
    try:
        start = datetime.fromisoformat(since.replace("Z", "+00:00"))
        end = datetime.fromisoformat(until.replace("Z", "+00:00")) if until else now
    except ValueError:
        return "?"
    seconds = max(0, int((end - start).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def render_history(history: History, now: datetime, style: Style) -> str:
    """The served table and the timeline."""
    lines = [f"{style.kind('Deployment')} {style.name(history.name)}  model {history.model}, {history.selector}", ""]
    if not history.served:
        lines.append("nothing served yet (status.history is empty)")
    else:
        rows = [("VERSION", "FROM", "TO", "FOR", "MODELVERSION", "HOW", "ORIGIN")] + [
            (
                f"v{s.version}",
                s.since,
                s.until or "now",
                _duration(s.since, s.until, now),
                s.model_version or "-",
                s.how,
                s.origin,
            )
            for s in history.served
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
        for row in rows:
            lines.append("  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]]).rstrip())
    if history.in_flight:
        lines += ["", f"NOW  {history.in_flight}"]
    if history.changes:
        lines += ["", "CHANGES"]
        width = max(len(c.reason) for c in history.changes)
        for change in history.changes:
            reason = style.paint(change.reason.ljust(width), "red" if change.warning else "cyan")
            version = f"v{change.version}" if change.version is not None else "  "
            lines.append(f"  {change.at or '?':<20}  {version:<4} {reason}  {change.message}  [{change.source}]")
    return "\n".join(lines)
