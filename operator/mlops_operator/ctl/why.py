"""`why NAME`: the conditions and recent Events that explain an object's current phase. Pure.

Every kind's status has `phase`, `message` and `conditions` (a summary `Ready`, TrainingRun also `Succeeded`,
and `Degraded` when an outside system holds it); the facts that decide the phase differ by kind and are
shown under it: a Dataset's violations, a TrainingRun's Job and pinned data, a ModelVersion's gate results,
a Deployment's canary, analysis, last rollback and drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .style import Style
from .tree import judged, number

Obj = dict[str, Any]
RECENT_EVENTS = 10


@dataclass(frozen=True)
class Explanation:
    """What `why` prints for one object."""

    kind: str
    name: str
    phase: str | None
    message: str | None
    conditions: list[Obj]
    facts: list[str]
    events: list[Obj]


def events_about(obj: Obj, events: list[Obj]) -> list[Obj]:
    """The Events whose involvedObject is this object (by uid: a Dataset and a Deployment may share a name)."""
    uid = (obj.get("metadata") or {}).get("uid")
    return sorted(
        (e for e in events if (e.get("involvedObject") or {}).get("uid") == uid),
        key=event_time,
    )


def event_time(event: Obj) -> str:
    """When an Event last happened (core/v1 lastTimestamp, or events/v1 eventTime)."""
    return str(event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp") or "")


def _dataset(status: Obj) -> list[str]:
    facts = [f"version {status['version']}, {status.get('rows')} rows" if status.get("version") else ""]
    facts += [
        f"violation: {v.get('column') or '(table)'} {v.get('rule')}: {v.get('message')}"
        for v in status.get("violations") or []
    ]
    if status.get("jobName"):
        facts.append(
            f"check Job {status['jobName']}"
            + (f", last checked {status['lastChecked']}" if status.get("lastChecked") else "")
        )
    return facts


def _run(spec: Obj, status: Obj) -> list[str]:
    facts = [
        f"dataset {(spec.get('datasetRef') or {}).get('name')}"
        + (f" version {status['datasetVersion']}" if status.get("datasetVersion") else " (no version pinned yet)")
    ]
    if status.get("jobName"):
        facts.append(f"Job {status['jobName']}")
    if status.get("metrics"):
        facts.append("metrics " + ", ".join(f"{k} {number(v)}" for k, v in sorted(status["metrics"].items())))
    if status.get("modelVersion"):
        facts.append(f"registered as ModelVersion {status['modelVersion']}")
    return facts


def _model_version(spec: Obj, status: Obj, style: Style) -> list[str]:
    promotion = spec.get("promotion") or {}
    alias, mode = promotion.get("alias"), promotion.get("mode")
    facts = [f"{spec.get('registeredModel')} version {spec.get('version')}, alias '{alias}', mode {mode}"]
    for gate in status.get("gateResults") or []:
        line = "gate " + judged(gate, style, "metric")
        facts.append(line + (f" ({gate['message']})" if gate.get("message") else ""))
    if promotion.get("mode") == "manual" and not spec.get("promote"):
        facts.append("manual mode: waiting for spec.promote: true")
    if status.get("promotedAt"):
        facts.append(f"promoted at {status['promotedAt']}")
    if status.get("supersededBy"):
        facts.append(f"superseded by {status['supersededBy']}")
    return facts


def _deployment(status: Obj, style: Style) -> list[str]:
    facts = [
        f"stable v{status.get('stableVersion')}" if status.get("stableVersion") is not None else "no stable version yet"
    ]
    if status.get("canaryVersion") is not None:
        since = f" since {status['stepStartedAt']}" if status.get("stepStartedAt") else ""
        facts.append(
            f"canary v{status['canaryVersion']} at {status.get('canaryWeight') or 0}%,"
            f" step {int(status.get('step') or 0) + 1}{since}; a passing analysis in this step:"
            f" {'yes' if status.get('stepAnalysisPassed') else 'not yet'}; failed analyses"
            f" {status.get('analysisFailures') or 0}, erring ones in a row {status.get('analysisErrors') or 0}"
        )
    for result in status.get("analysis") or []:
        line = "analysis " + judged(result, style)
        facts.append(
            line
            + (
                f" ({result.get('error') or result.get('message')})"
                if result.get("error") or result.get("message")
                else ""
            )
        )
    rollbacks = status.get("rollbacks") or []
    if rollbacks:
        last = rollbacks[-1]
        facts.append(
            f"last rollback: v{last.get('version')} {last.get('reason')} at {last.get('at')}: {last.get('message')}"
        )
    drift = status.get("drift") or {}
    if drift:
        score = f"{drift.get('method')} {number(drift.get('score'))}"
        score += f" ({drift.get('feature')}, {drift.get('samples')} samples)"
        facts.append(f"drift: {drift.get('message') or score}")
    retraining = status.get("retraining") or {}
    if retraining.get("run"):
        facts.append(
            f"last retraining run {retraining['run']} ({', '.join(retraining.get('causes') or [])}):"
            f" {retraining.get('phase')}"
        )
    return facts


def explain(obj: Obj, events: list[Obj], style: Style) -> Explanation:
    """The explanation of one object from itself and its namespace's Events."""
    kind, spec, status = obj.get("kind", ""), obj.get("spec") or {}, obj.get("status") or {}
    if kind == "Dataset":
        facts = _dataset(status)
    elif kind == "TrainingRun":
        facts = _run(spec, status)
    elif kind == "ModelVersion":
        facts = _model_version(spec, status, style)
    else:
        facts = _deployment(status, style)
    recent = events_about(obj, events)[-RECENT_EVENTS:]
    return Explanation(
        kind,
        obj["metadata"]["name"],
        status.get("phase"),
        status.get("message"),
        status.get("conditions") or [],
        [f for f in facts if f],
        recent,
    )


def render_explanation(why: Explanation, style: Style) -> str:
    """Phase and message, the kind's deciding facts, the conditions, and the recent Events."""
    lines = [
        f"{style.kind(why.kind)} {style.name(why.name)} is {style.phase(why.phase)}"
        + (f": {why.message}" if why.message else "")
    ]
    lines += [f"  {fact}" for fact in why.facts]
    lines += (
        ["", "CONDITIONS"] if why.conditions else ["", "CONDITIONS  (none yet: the operator has not reconciled it)"]
    )
    for c in why.conditions:
        lines.append(
            f"  {c.get('type', ''):<12} {style.phase(c.get('status'))}  {c.get('reason', '')}"
            f"  since {c.get('lastTransitionTime', '?')}" + (f"\n      {c['message']}" if c.get("message") else "")
        )
    lines += ["", f"EVENTS (last {RECENT_EVENTS})" if why.events else "EVENTS  (none kept by the API server)"]
    for e in why.events:
        count = f" x{e['count']}" if (e.get("count") or 1) > 1 else ""
        kind = e.get("type", "").ljust(7)  # padded before painting: escape codes have no width
        kind = style.paint(kind, "red") if e.get("type") == "Warning" else kind
        lines.append(f"  {event_time(e):<20}  {kind} {e.get('reason', '')}{count}: {e.get('message', '')}")
    return "\n".join(lines)
