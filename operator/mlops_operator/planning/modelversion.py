"""ModelVersion planning: judge the promotion gates, approve, and promote through the MLflow alias."""

from __future__ import annotations

from datetime import datetime

from .conditions import set_condition
from .plan import Event, Meta, Obj, Plan, rfc3339

LOWER_IS_BETTER = frozenset({"rmse", "mae", "mse", "log_loss"})
NOT_FOUND_RETRY_SECONDS = 15.0
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


def plan_modelversion(
    body: Obj,
    registered: Obj | None,
    metrics: dict[str, float],
    holder: int | None,
    holder_metrics: dict[str, float] | None,
    rollouts: list[str],
    now: datetime,
) -> Plan:
    """Next status (and alias move) for a ModelVersion, given the registry's view and Deployments that roll it out."""
    meta, spec, status = Meta.of(body), body["spec"], dict(body.get("status") or {})
    plan, stamp = Plan(status=status), rfc3339(now)
    phase, version = status.get("phase"), int(spec["version"])
    model, promotion = spec["registeredModel"], spec.get("promotion") or {}
    alias = promotion.get("alias", "production")
    if phase in TERMINAL:
        return plan
    if registered is None:
        status.update(phase="Registered", message=f"MLflow has no version {version} of registered model '{model}'")
        _ready(status, meta, stamp, "False", "VersionNotFound", status["message"])
        plan.requeue_after = NOT_FOUND_RETRY_SECONDS
        return plan
    if metrics:
        status["metrics"] = {k: round(v, 6) for k, v in sorted(metrics.items())}
    if phase == "Promoted":
        if holder != version:
            by = f"version {holder}" if holder is not None else "nobody (the alias was removed)"
            status.update(phase="Superseded", supersededBy=str(holder) if holder else None)
            status["message"] = f"alias '{alias}' now names {by}"
            _ready(status, meta, stamp, "False", "Superseded", status["message"])
            plan.events.append(Event("Superseded", status["message"]))
        return plan
    regate = status.get("observedGeneration") != meta.generation or status.get("gateResults") is None
    status["observedGeneration"] = meta.generation
    if holder == version:  # the registry already names it (a restart after the alias moved, or a manual move)
        return _promoted(plan, meta, stamp, model, alias, version, moved=False)
    if regate or phase not in ("Approved", "Evaluating", "Rejected"):
        results = judge_gates(promotion.get("gates") or [], metrics, holder_metrics if holder is not None else None)
        status["gateResults"] = results
        failed = [r for r in results if not r["passed"]]
        if failed:
            status.update(phase="Rejected", message="; ".join(f"gate {r['message']}" for r in failed))
            _ready(status, meta, stamp, "False", "GateFailed", status["message"])
            plan.events.append(Event("Rejected", status["message"], "Warning"))
            return plan
        if promotion.get("mode") == "manual" and not spec.get("promote"):
            status.update(phase="Evaluating", message="all gates passed; set spec.promote: true to approve")
            _ready(status, meta, stamp, "False", "AwaitingApproval", status["message"])
            return plan
        if phase != "Approved":
            plan.events.append(Event("Approved", f"all {len(results)} gate(s) passed for '{alias}'"))
        status["phase"] = "Approved"
    if status.get("phase") != "Approved":
        return plan
    if rollouts:
        names = ", ".join(f"deployments.mlops.dev/{r}" for r in sorted(rollouts))  # same namespace
        status["message"] = f"approved; {names} rolls it out as a canary and moves '{alias}' when the canary completes"
        _ready(status, meta, stamp, "False", "AwaitingRollout", status["message"])
        return plan
    plan.alias_moves.append((model, alias, version))
    return _promoted(plan, meta, stamp, model, alias, version, moved=True)


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
