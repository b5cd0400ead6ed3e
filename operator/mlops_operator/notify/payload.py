"""The bodies sent: one JSON document per notification carrying the ML facts, and its Slack rendering (pure).

The facts come from the object and the status the same pass just wrote, so a notification says exactly what
`kubectl get -o yaml` shows at that moment: model and version, metrics, gate results, canary weight and
analysis values, drift feature and score, live-quality figures, the retraining decision, the rollback reason.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any

from ..api.notification import Trigger
from ..planning.plan import Event, rfc3339

Obj = dict[str, Any]

PAYLOAD_VERSION = "mlops.dev/notification/v1"
_VERSION_SUFFIX = re.compile(r"-([0-9]+)$")


def event_id(body: Obj, event: Event) -> str:
    """A stable identity of one planned Event: the object's uid and the resourceVersion the pass was planned
    from (its status write was preconditioned on it, so one pass posts one set of Events), and the Event.
    Retries of a delivery carry the same id, so a receiver can drop a duplicate."""
    meta = body["metadata"]
    text = f"{meta.get('uid')}/{meta.get('resourceVersion')}/{event.reason}/{event.message}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def build_payload(trigger: Trigger, event: Event, body: Obj, status: Obj, now: datetime) -> Obj:
    """The JSON notification of `event` about `body`, whose status is now `status`."""
    meta, kind = body["metadata"], body.get("kind", "")
    payload: Obj = {
        "apiVersion": PAYLOAD_VERSION,
        "id": event_id(body, event),
        "trigger": trigger,
        "reason": event.reason,
        "severity": event.type,
        "message": event.message,
        "time": rfc3339(now),
        "object": {
            "apiVersion": body.get("apiVersion"),
            "kind": kind,
            "namespace": meta.get("namespace"),
            "name": meta.get("name"),
            "uid": meta.get("uid"),
        },
        "phase": status.get("phase"),
    }
    facts = {"TrainingRun": _trainingrun, "ModelVersion": _modelversion, "Deployment": _deployment}.get(kind)
    if facts is not None:
        payload.update(facts(trigger, body.get("spec") or {}, status, meta))
    return {k: v for k, v in payload.items() if v is not None}


def model_of(body: Obj) -> str | None:
    """The registered model an object is about (what a policy's `models` filter matches)."""
    spec = body.get("spec") or {}
    if body.get("kind") == "Deployment":
        return (spec.get("model") or {}).get("registeredModel")
    return spec.get("registeredModel")


def _trainingrun(trigger: Trigger, spec: Obj, status: Obj, meta: Obj) -> Obj:
    mv_name = status.get("modelVersion") or ""
    match = _VERSION_SUFFIX.search(mv_name)
    labels = meta.get("labels") or {}
    return {
        "model": _pruned({"name": spec.get("registeredModel"), "version": int(match.group(1)) if match else None}),
        "modelVersion": status.get("modelVersion"),
        "metrics": status.get("metrics"),
        "dataset": _pruned(
            {"name": (spec.get("datasetRef") or {}).get("name"), "version": status.get("datasetVersion")}
        ),
        "mlflowRunId": status.get("mlflowRunId"),
        "triggeredBy": labels.get("mlops.dev/triggered-by"),
        "reasonDetail": status.get("message") if trigger == "TrainingFailed" else None,
    }


def _modelversion(trigger: Trigger, spec: Obj, status: Obj, meta: Obj) -> Obj:
    promotion = spec.get("promotion") or {}
    return {
        "model": _pruned(
            {"name": spec.get("registeredModel"), "version": spec.get("version"), "alias": promotion.get("alias")}
        ),
        "metrics": status.get("metrics"),
        "gates": status.get("gateResults"),
        "approval": status.get("approval"),
        "reasonDetail": status.get("message"),
    }


def _deployment(trigger: Trigger, spec: Obj, status: Obj, meta: Obj) -> Obj:
    stable, canary = status.get("stableVersion"), status.get("canaryVersion")
    rollback = (status.get("rollbacks") or [None])[-1] if trigger in ("RolledBack", "ShadowFailed") else None
    version = (rollback or {}).get("version") or canary or stable
    facts: Obj = {
        "model": _pruned(
            {
                "name": (spec.get("model") or {}).get("registeredModel"),
                "version": version,
                "stableVersion": stable,
                "canaryVersion": canary,
            }
        ),
        "canary": _pruned({"weight": status.get("canaryWeight"), "step": status.get("step")}) or None,
        "analysis": status.get("analysis") if trigger in ("CanaryStep", "RolledBack", "Promoted") else None,
        "rollback": rollback,
        "reasonDetail": (rollback or {}).get("reason"),
    }
    if trigger in ("ShadowPassed", "ShadowFailed"):
        facts["shadow"] = status.get("shadow")
    if trigger == "DriftDetected":
        facts["drift"] = status.get("drift")
    if trigger == "PerformanceDegraded":
        facts["performance"] = _pruned({k: v for k, v in (status.get("performance") or {}).items() if k != "tracks"})
    if trigger in ("RetrainingStarted", "RetrainingFailed"):
        facts["retraining"] = status.get("retraining")
        facts["reasonDetail"] = (status.get("retraining") or {}).get("message")
    return facts


def _pruned(values: Obj) -> Obj:
    return {k: v for k, v in values.items() if v is not None}


def slack_message(payload: Obj) -> Obj:
    """A Slack incoming-webhook body (`text` for notifications and clients without blocks, `blocks` for the
    channel): a headline, the model facts as fields, and the notification id."""
    obj, model = payload.get("object") or {}, payload.get("model") or {}
    icon = ":warning:" if payload.get("severity") == "Warning" else ":white_check_mark:"
    where = f"{obj.get('kind')} {obj.get('namespace')}/{obj.get('name')}"
    text = f"{icon} {payload['trigger']}: {where} — {payload.get('message', '')}"
    fields = []
    if model.get("name"):
        version = f" v{model['version']}" if model.get("version") is not None else ""
        fields.append(f"*Model*\n{model['name']}{version}")
    for title, value in _headline_facts(payload):
        fields.append(f"*{title}*\n{value}")
    blocks: list[Obj] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _slack_escape(text)[:3000]}},
    ]
    if fields:
        blocks.append(
            {"type": "section", "fields": [{"type": "mrkdwn", "text": _slack_escape(f)[:2000]} for f in fields[:10]]}
        )
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"id {payload['id']} · {payload['time']}"}]}
    )
    return {"text": _slack_escape(text)[:3000], "blocks": blocks}


def _headline_facts(payload: Obj) -> list[tuple[str, str]]:
    facts: list[tuple[str, str]] = []
    if payload.get("metrics"):
        facts.append(("Metrics", ", ".join(f"{k} {v:.3f}" for k, v in sorted(payload["metrics"].items()))))
    for gate in payload.get("gates") or []:
        verdict = "passed" if gate.get("passed") else "failed"
        facts.append((f"Gate {gate.get('metric')}", f"{gate.get('value')} vs {gate.get('threshold')}: {verdict}"))
    if payload.get("canary"):
        facts.append(("Canary", f"{payload['canary'].get('weight')}% (step {payload['canary'].get('step')})"))
    for result in payload.get("analysis") or []:
        facts.append((f"Analysis {result.get('name')}", f"{result.get('value')} (bound {result.get('threshold')})"))
    drift = payload.get("drift") or {}
    if drift.get("feature"):
        facts.append(("Drift", f"{drift.get('method')} {drift.get('score')} on {drift['feature']}"))
    if payload.get("reasonDetail"):
        facts.append(("Reason", str(payload["reasonDetail"])))
    return facts


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn treats &, < and > as control characters (links, mentions); a message must not ping @channel.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
