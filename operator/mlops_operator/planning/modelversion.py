"""ModelVersion planning: judge the promotion gates, approve, and promote through the MLflow alias."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ..api.modelversion import ModelVersionSpec
from .approval import approval_of, approval_tags, tags_missing
from .conditions import find_condition, set_condition
from .ownership import ModelOwnership, recheck_after, refusal
from .plan import Event, Meta, Obj, Plan, parse_time, rfc3339

LOWER_IS_BETTER = frozenset({"rmse", "mae", "mse", "log_loss"})
NOT_FOUND_RETRY_SECONDS = 15.0
MAX_RETRY_SECONDS = 300.0
TERMINAL = ("Superseded", "RolledBack")


def judge_gates(gates: list[Obj], metrics: dict[str, float], holder_metrics: dict[str, float] | None) -> list[Obj]:
    """One result per gate; `holder_metrics` is None when no other version holds the alias."""
    results = []
    for gate in gates:
        metric = gate["metric"]
        value = metrics.get(metric)
        if value is None:
            results.append(_result(metric, None, None, False, f"metric '{metric}' was not logged by the run"))
            continue
        if gate.get("min") is not None and value < gate["min"]:
            results.append(_result(metric, value, gate["min"], False, f"{metric} {value:.4f} < min {gate['min']:g}"))
            continue
        needed = gate.get("minImprovement")
        if needed is not None and holder_metrics is not None:
            base = holder_metrics.get(metric)
            if base is not None:
                gain = base - value if metric in LOWER_IS_BETTER else value - base
                threshold = base - needed if metric in LOWER_IS_BETTER else base + needed
                if gain < needed:
                    why = f"{metric} {value:.4f} improves on the alias holder's {base:.4f} by {gain:+.4f} < {needed:g}"
                    results.append(_result(metric, value, threshold, False, why))
                    continue
                results.append(_result(metric, value, threshold, True, f"improves by {gain:+.4f}"))
                continue
        threshold = gate.get("min")
        results.append(_result(metric, value, threshold, True, "passed"))
    return results


def _result(metric: str, value: float | None, threshold: float | None, passed: bool, message: str) -> Obj:
    result: Obj = {"metric": metric, "passed": passed, "message": message}
    if value is not None:
        result["value"] = round(value, 6)
    if threshold is not None:
        result["threshold"] = round(threshold, 6)
    return result


@dataclass(frozen=True)
class ModelVersionObserved:
    """What one ModelVersion pass read: the registry's view (or why it could not be read) and the store's."""

    registered: Obj | None = None  # the registry version; None when MLflow has no such version
    metrics: dict[str, float] = field(default_factory=dict)
    holder: int | None = None  # the version holding the alias now
    holder_metrics: dict[str, float] | None = None
    rollouts: list[str] = field(default_factory=list)  # Deployments that roll this alias out as canaries
    rolled_back_by: tuple[str, str] | None = None  # (Deployment, message) that aborted this version's canary
    mlflow_error: str | None = None  # MLflow could not be read: nothing is decided, Degraded says why
    ownership: ModelOwnership | None = None  # the registered model's owner; None: not read (MLflow down)


def plan_modelversion(body: Obj, obs: ModelVersionObserved, now: datetime) -> Plan:
    """Next status (and alias move) for a ModelVersion, given the registry's view and Deployments that roll it out."""
    meta, status = Meta.of(body), dict(body.get("status") or {})
    spec = ModelVersionSpec.model_validate(body["spec"])
    plan, stamp = Plan(status=status), rfc3339(now)
    phase, version, model = status.get("phase"), spec.version, spec.registered_model
    alias = spec.promotion.alias
    regate = status.get("observedGeneration") != meta.generation or status.get("gateResults") is None
    status["observedGeneration"] = meta.generation
    if phase in TERMINAL:
        return plan
    if obs.mlflow_error is not None:
        _condition(status, meta, stamp, "Degraded", "True", "MlflowUnavailable", obs.mlflow_error)
        plan.requeue_after = _retry_after(status, "Degraded", now)
        return plan
    _condition(status, meta, stamp, "Degraded", "False", "AsExpected", "MLflow answered")
    refused = refusal(meta.namespace, obs.ownership, "promote") if obs.ownership is not None else None
    if refused is not None:  # another namespace's model: no gates judged, no alias moved
        previous = find_condition(status.get("conditions"), "Ready") or {}
        status.update(phase="Refused", aliasMove=None, message=refused.message)
        _ready(status, meta, stamp, "False", refused.reason, refused.message)
        if previous.get("reason") != refused.reason:
            plan.events.append(Event(refused.reason, refused.message, "Warning"))
        since = parse_time((find_condition(status["conditions"], "Ready") or {}).get("lastTransitionTime")) or now
        plan.requeue_after = recheck_after((now - since).total_seconds())
        return plan
    if obs.rolled_back_by is not None and phase not in ("Promoted", "Rejected"):
        deployment, why = obs.rolled_back_by
        status.update(phase="RolledBack", aliasMove=None, message=f"deployments.mlops.dev/{deployment}: {why}")
        _ready(status, meta, stamp, "False", "RolledBack", status["message"])
        plan.events.append(Event("RolledBack", status["message"], "Warning"))
        return plan
    if obs.registered is None:
        status.update(phase="Registered", message=f"MLflow has no version {version} of registered model '{model}'")
        _ready(status, meta, stamp, "False", "VersionNotFound", status["message"])
        plan.requeue_after = _retry_after(status, "Ready", now)  # settles and backs off; a change wakes it at once
        return plan
    if obs.metrics:
        status["metrics"] = {k: round(v, 6) for k, v in sorted(obs.metrics.items())}
    pending = status.get("aliasMove")
    if phase == "Promoted":
        if obs.holder != version:
            by = f"version {obs.holder}" if obs.holder is not None else "nobody (the alias was removed)"
            status.update(phase="Superseded", supersededBy=str(obs.holder) if obs.holder else None)
            status["message"] = f"alias '{alias}' now names {by}"
            _ready(status, meta, stamp, "False", "Superseded", status["message"])
            plan.events.append(Event("Superseded", status["message"]))
        return plan
    if obs.holder == version:  # the registry names it: our move is confirmed, or a restart or a manual move
        status["aliasMove"] = None
        return _promoted(plan, meta, stamp, model, alias, version, moved=bool(pending))
    if regate or phase not in ("Approved", "Evaluating", "Rejected"):
        gates = [g.model_dump(by_alias=True, exclude_none=True) for g in spec.promotion.gates]
        results = judge_gates(gates, obs.metrics, obs.holder_metrics if obs.holder is not None else None)
        status["gateResults"] = results
        failed = [r for r in results if not r["passed"]]
        if failed:
            status.update(phase="Rejected", message="; ".join(f"gate {r['message']}" for r in failed))
            _ready(status, meta, stamp, "False", "GateFailed", status["message"])
            plan.events.append(Event("Rejected", status["message"], "Warning"))
            return plan
        if spec.promotion.mode == "manual" and not spec.promote:
            status.update(phase="Evaluating", message="all gates passed; set spec.promote: true to approve")
            _ready(status, meta, stamp, "False", "AwaitingApproval", status["message"])
            return plan
        if spec.promotion.mode == "manual":  # recorded once: a later edit of spec.promote does not rewrite it
            status["approval"] = status.get("approval") or approval_of(body["metadata"], stamp)
        if phase != "Approved":
            passed = f"all {len(results)} gate(s) passed for '{alias}'"
            if status.get("approval"):
                record = status["approval"]
                passed += f"; approved by {record['by']} ({record['via']}) at {record['at']}"
            plan.events.append(Event("Approved", passed))
        status["phase"] = "Approved"
    if status.get("phase") != "Approved":
        return plan
    if status.get("approval"):  # the registry version carries the same record (set until MLflow shows it)
        missing = tags_missing(obs.registered, approval_tags(status["approval"]))
        if missing:
            plan.version_tags.append((model, version, missing))
    if obs.rollouts and not pending:
        names = ", ".join(f"deployments.mlops.dev/{r}" for r in sorted(obs.rollouts))  # same namespace
        status["message"] = f"approved; {names} rolls it out as a canary and moves '{alias}' when the canary completes"
        _ready(status, meta, stamp, "False", "AwaitingRollout", status["message"])
        return plan
    # Intent first: the move is recorded, made after that write, and confirmed from MLflow on the next pass.
    status["aliasMove"] = pending or {"registeredModel": model, "alias": alias, "version": version, "decidedAt": stamp}
    status["message"] = f"approved; moving alias '{alias}' to version {version}"
    _ready(status, meta, stamp, "False", "Promoting", status["message"])
    plan.alias_moves.append((model, alias, version))
    return plan


def _retry_after(status: Obj, ctype: str, now: datetime) -> float:
    """A back-off that grows with how long the condition has held: 15 s at first, at most 5 minutes."""
    since = parse_time((find_condition(status.get("conditions"), ctype) or {}).get("lastTransitionTime")) or now
    return min(MAX_RETRY_SECONDS, max(NOT_FOUND_RETRY_SECONDS, (now - since).total_seconds() / 2))


def _condition(status: Obj, meta: Meta, stamp: str, ctype: str, value: str, reason: str, message: str) -> None:
    status["conditions"] = set_condition(
        status.get("conditions"), ctype, value, reason, message, generation=meta.generation, now=stamp
    )


def _promoted(plan: Plan, meta: Meta, stamp: str, model: str, alias: str, version: int, moved: bool) -> Plan:
    status = plan.status
    status.update(phase="Promoted", message=f"'{alias}' names {model} version {version}")
    status.setdefault("promotedAt", stamp)
    _ready(status, meta, stamp, "True", "Promoted", status["message"])
    if moved:
        plan.events.append(Event("Promoted", f"alias '{alias}' of {model} moved to version {version}"))
    return plan


def _ready(status: Obj, meta: Meta, stamp: str, value: str, reason: str, message: str) -> None:
    status["conditions"] = set_condition(
        status.get("conditions"), "Ready", value, reason, message, generation=meta.generation, now=stamp
    )
