"""Deployment planning: which version serves, the canary's step, analysis verdicts, rollback and promotion.

All rollout state lives in status; the serving objects are derived from (spec, status) alone, so a
restarted operator continues exactly where the status says — it never repeats or reverses a step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ..api.common import parse_duration
from .conditions import set_condition
from .plan import Event, Meta, Obj, Plan, parse_time, rfc3339
from .serving import ServerSettings, served_version, server_deployment, service, split_replicas

STEADY_RESYNC_SECONDS = 60.0


@dataclass(frozen=True)
class Observed:
    """What the controller read before planning."""

    holder: int | None = None  # the alias holder in MLflow (alias mode)
    approved: dict[int, str] = field(default_factory=dict)  # version -> ModelVersion name, Approved for the alias
    stable: Obj | None = None  # the observed apps/v1 Deployments
    canary: Obj | None = None
    stable_ready: int = 0
    canary_ready: int = 0
    analysis: list[Obj] | None = None  # results of this pass's queries; None when none were due


def canary_settings(spec: Obj) -> tuple[list[Obj], Obj]:
    """The canary steps and analysis settings, with defaults applied."""
    canary = (spec.get("strategy") or {}).get("canary") or {}
    steps = canary.get("steps") or [{"weight": 10, "pause": "60s"}, {"weight": 50, "pause": "60s"}, {"weight": 100}]
    return steps, canary.get("analysis") or {}


def analysis_due(body: Obj, now: datetime) -> bool:
    """True while a canary runs and the last analysis is at least one interval old."""
    spec, status = body["spec"], body.get("status") or {}
    _, analysis = canary_settings(spec)
    if status.get("canaryVersion") is None or not analysis.get("metrics"):
        return False
    since = parse_time(status.get("lastAnalysisAt")) or parse_time(status.get("stepStartedAt"))
    interval = parse_duration(analysis.get("interval", "30s")).total_seconds()
    return since is None or (now - since).total_seconds() >= interval


def choose_target(spec: Obj, status: Obj, obs: Observed) -> int | None:
    """The version that should serve: the pinned one, else the newest Approved candidate, else the alias holder."""
    model = spec["model"]
    if model.get("version"):
        return int(model["version"])
    skip = {status.get("stableVersion"), status.get("rolledBackVersion")}
    candidates = [v for v in obs.approved if v not in skip]
    return max(candidates) if candidates else obs.holder


def plan_deployment(body: Obj, obs: Observed, now: datetime, settings: ServerSettings) -> Plan:
    """Next rollout status and the serving objects it implies."""
    meta, spec = Meta.of(body), body["spec"]
    status = dict(body.get("status") or {})
    plan, stamp = Plan(status=status), rfc3339(now)
    status["observedGeneration"] = meta.generation
    target = choose_target(spec, status, obs)
    stable, canary = status.get("stableVersion"), status.get("canaryVersion")
    steps, analysis = canary_settings(spec)
    if stable is None:
        if target is not None:
            _serve(status, target, stamp)
            plan.events.append(Event("Serving", f"serving version {target} as stable"))
    elif canary is None:
        if target is not None and target not in (stable, status.get("rolledBackVersion")):
            _start_canary(plan, target, stamp, steps)
    elif target is not None and target not in (canary, stable):
        _start_canary(plan, target, stamp, steps)  # a newer candidate replaces the running canary
    elif target == stable:
        status.update(canaryVersion=None, canaryWeight=None, step=None, stepStartedAt=None, stepAnalysisPassed=None)
        plan.events.append(Event("CanaryCancelled", f"version {stable} is wanted again; canary {canary} removed"))
    else:
        _progress_canary(plan, obs, now, steps, analysis, body)
    _finish_first_rollout(plan, obs, spec, meta.namespace)
    _conditions_and_phase(plan, obs, meta, stamp, spec)
    plan.applies.extend(_children(body, plan.status, obs, settings))
    if plan.status.get("canaryVersion") is not None:
        plan.requeue_after = _next_wakeup(plan.status, now, steps, analysis)
    elif spec["model"].get("alias"):
        plan.requeue_after = STEADY_RESYNC_SECONDS  # notice alias moves made outside the operator
    return plan


def _serve(status: Obj, version: int, stamp: str) -> None:
    history = [dict(h) for h in status.get("history") or []]
    if history and history[-1].get("to") is None:
        history[-1]["to"] = stamp
    history.append({"version": version, "from": stamp})
    status.update(stableVersion=version, history=history[-20:])


def _start_canary(plan: Plan, version: int, stamp: str, steps: list[Obj]) -> None:
    plan.status.update(
        canaryVersion=version,
        step=0,
        canaryWeight=steps[0]["weight"],
        stepStartedAt=stamp,
        stepAnalysisPassed=False,
        analysisFailures=0,
        lastAnalysisAt=None,
        analysis=None,
        rolledBackVersion=None,
    )
    plan.events.append(Event("CanaryStarted", f"canary of version {version} at {steps[0]['weight']}%"))


def _progress_canary(plan: Plan, obs: Observed, now: datetime, steps: list[Obj], analysis: Obj, body: Obj) -> None:
    status, stamp = plan.status, rfc3339(now)
    canary, step = int(status["canaryVersion"]), int(status.get("step") or 0)
    if obs.analysis is not None:
        failed = [r for r in obs.analysis if r.get("passed") is False]
        status.update(
            analysis=obs.analysis,
            lastAnalysisAt=stamp,
            analysisFailures=int(status.get("analysisFailures") or 0) + (1 if failed else 0),
        )
        limit = max(1, int(analysis.get("failureLimit", 2)))
        if failed and status["analysisFailures"] >= limit:
            _abort(plan, canary, failed, body, obs, stamp)
            return
        if obs.analysis and all(r.get("passed") is True for r in obs.analysis):
            status["stepAnalysisPassed"] = True
    replicas = int(body["spec"].get("replicas", 2))
    wanted = split_replicas(replicas, steps[step]["weight"])[1]
    started = parse_time(status.get("stepStartedAt")) or now
    pause = parse_duration(steps[step]["pause"]).total_seconds() if steps[step].get("pause") else 0.0
    if obs.canary_ready < wanted or (now - started).total_seconds() < pause:
        return
    # "No data yet" is not a pass: a step with analysis ends only after one analysis judged every metric
    # and all passed (a canary without traffic waits, as Argo Rollouts pauses on inconclusive results).
    if analysis.get("metrics") and not status.get("stepAnalysisPassed"):
        return
    if step + 1 < len(steps):
        status.update(
            step=step + 1, canaryWeight=steps[step + 1]["weight"], stepStartedAt=stamp, stepAnalysisPassed=False
        )
        plan.events.append(Event("CanaryStep", f"version {canary} at {steps[step + 1]['weight']}%"))
        return
    _serve(status, canary, stamp)
    status.update(canaryVersion=None, canaryWeight=None, step=None, stepStartedAt=None, stepAnalysisPassed=None)
    model = body["spec"]["model"]
    if model.get("alias"):
        plan.alias_moves.append((model["registeredModel"], model["alias"], canary))
    plan.events.append(Event("CanaryCompleted", f"version {canary} is stable"))
    name = obs.approved.get(canary)
    if name:
        plan.wake.append(("ModelVersion", body["metadata"]["namespace"], name))


def _abort(plan: Plan, canary: int, failed: list[Obj], body: Obj, obs: Observed, now: str) -> None:
    status = plan.status
    reason = "; ".join(r.get("message") or r["name"] for r in failed)
    status.update(
        canaryVersion=None,
        canaryWeight=None,
        step=None,
        stepStartedAt=None,
        stepAnalysisPassed=None,
        rolledBackVersion=canary,
        message=f"canary of version {canary} rolled back: {reason}",
    )
    plan.events.append(Event("RolledBack", status["message"], "Warning"))
    name = obs.approved.get(canary)
    if name:
        message = f"the canary was rolled back: {reason}"
        ready = {"type": "Ready", "status": "False", "reason": "RolledBack", "message": message}
        rolled_back = {"phase": "RolledBack", "message": message, "conditions": [{**ready, "lastTransitionTime": now}]}
        plan.related_status.append(("ModelVersion", body["metadata"]["namespace"], name, rolled_back))


def _finish_first_rollout(plan: Plan, obs: Observed, spec: Obj, namespace: str) -> None:
    """The very first version served from an approval takes the alias once it is fully ready."""
    status, model = plan.status, spec["model"]
    stable = status.get("stableVersion")
    if not model.get("alias") or stable is None or obs.holder == stable or stable not in obs.approved:
        return
    if status.get("canaryVersion") is None and obs.stable_ready >= int(spec.get("replicas", 2)):
        plan.alias_moves.append((model["registeredModel"], model["alias"], stable))
        plan.wake.append(("ModelVersion", namespace, obs.approved[stable]))


def _conditions_and_phase(plan: Plan, obs: Observed, meta: Meta, stamp: str, spec: Obj) -> None:
    status = plan.status
    replicas = int(spec.get("replicas", 2))
    ready_total = obs.stable_ready + obs.canary_ready
    status["readyReplicas"] = ready_total
    status["endpoint"] = f"http://{meta.name}.{meta.namespace}.svc"

    def cond(ctype: str, value: str, reason: str, message: str) -> None:
        status["conditions"] = set_condition(
            status.get("conditions"), ctype, value, reason, message, generation=meta.generation, now=stamp
        )

    canary, stable = status.get("canaryVersion"), status.get("stableVersion")
    available = stable is not None and ready_total >= max(1, replicas) if replicas else stable is not None
    cond(
        "Available",
        "True" if available else "False",
        "MinimumReplicas" if available else "Unavailable",
        f"{ready_total}/{replicas} replicas ready",
    )
    if stable is None:
        message = f"no version of {spec['model']['registeredModel']} to serve yet"
        if spec["model"].get("alias"):
            message += f": none holds alias '{spec['model']['alias']}' or is Approved for it"
        status.update(phase="Progressing", message=message)
        cond("Progressing", "True", "WaitingForVersion", message)
        cond("Ready", "False", "WaitingForVersion", message)
        return
    if canary is not None:
        message = f"canary version {canary} at {status.get('canaryWeight')}% (step {int(status['step']) + 1})"
        if canary_settings(spec)[1].get("metrics") and not status.get("stepAnalysisPassed"):
            message += ", waiting for a passing analysis"
        status.update(phase="Progressing", message=message)
        cond("Progressing", "True", "CanaryProgressing", message)
        cond("Ready", "False", "CanaryProgressing", message)
        return
    rolled_back = status.get("rolledBackVersion")
    if rolled_back is not None:
        status["phase"] = "RolledBack"
        cond("RolledBack", "True", "AnalysisFailed", status.get("message") or f"version {rolled_back} rolled back")
    else:
        cond("RolledBack", "False", "NoRollback", "no canary has been rolled back")
    if obs.stable_ready >= replicas:
        if rolled_back is None:
            status.update(phase="Healthy", message=f"version {stable} serves on {obs.stable_ready} replicas")
        cond("Progressing", "False", "Stable", f"version {stable} is stable")
        cond("Ready", "True", "Stable", f"version {stable} serves on {obs.stable_ready}/{replicas} replicas")
    else:
        if rolled_back is None:
            status.update(phase="Progressing", message=f"version {stable}: {obs.stable_ready}/{replicas} ready")
        cond("Progressing", "True", "ScalingStable", f"version {stable}: {obs.stable_ready}/{replicas} ready")
        cond("Ready", "False", "ScalingStable", f"version {stable}: {obs.stable_ready}/{replicas} ready")


def _children(body: Obj, status: Obj, obs: Observed, settings: ServerSettings) -> list[Obj]:
    replicas = int(body["spec"].get("replicas", 2))
    stable_replicas, canary_replicas = split_replicas(replicas, status.get("canaryWeight"))
    stable, canary = status.get("stableVersion"), status.get("canaryVersion")
    canary_version = canary
    if canary is None:
        # Hand-over after a completed canary: its pods keep serving until the stable track is ready.
        served = served_version(obs.canary)
        if served is not None and served == stable and obs.stable_ready < replicas and obs.canary is not None:
            canary_version, canary_replicas = served, int(obs.canary["spec"].get("replicas") or 0)
        else:
            canary_version, canary_replicas = served, 0
    return [
        service(body),
        server_deployment(body, "stable", stable, stable_replicas, settings),
        server_deployment(body, "canary", canary_version, canary_replicas, settings),
    ]


def _next_wakeup(status: Obj, now: datetime, steps: list[Obj], analysis: Obj) -> float:
    """Seconds until the pause ends or the next analysis is due (at most 5 s: readiness is polled too)."""
    step = steps[int(status.get("step") or 0)]
    started = parse_time(status.get("stepStartedAt")) or now
    waits = [5.0]
    if step.get("pause"):
        waits.append(parse_duration(step["pause"]).total_seconds() - (now - started).total_seconds())
    if analysis.get("metrics"):
        since = parse_time(status.get("lastAnalysisAt")) or started
        waits.append(parse_duration(analysis.get("interval", "30s")).total_seconds() - (now - since).total_seconds())
    return max(0.5, min(waits))
