"""The Deployment planner: one pure function decides rollout, analysis verdicts, drift and retraining.

    reads_due(...)         which outside reads this pass needs (pure, from spec, status and the store)
    plan_deployment(obs)   every decision, in this order: rollout (planning/rollout.py), drift
                           (planning/monitoring.py), retraining (planning/retraining.py), then the
                           Degraded/Available/Progressing/Ready conditions and the children

Outside failures arrive as data (`holder_error`, erred readings, a drift read's error): the rollout
holds or aborts by its limits, the last known version keeps serving, and Degraded says why.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from ..api.common import ConditionStatus
from ..api.deployment import DeploymentSpec, DeploymentStatus
from ..api.retraining import RetrainingStatus
from ..contract import ANNOTATION_SPEC_HASH
from .analysis import AnalysisQuery, analysis_queries
from .conditions import find_typed, set_typed, status_patch
from .conflicts import plan_name_conflicts
from .monitoring import DriftQueries, drift_reads, plan_drift
from .observed import DeploymentObserved, Tracks, WatchedDataset
from .ownership import REFUSED_REASONS, ModelOwnership, Refusal, recheck_after, refusal
from .performance import PerformanceQueries, performance_reads, plan_performance
from .plan import Event, Meta, Plan, parse_time, rfc3339
from .querypolicy import CustomQueries
from .retraining import needs_source_spec, plan_retraining, retraining_of
from .rollout import analysis_due, plan_rollout, step_seconds, step_weight
from .scaling import replica_floor
from .serving import needs_update, replica_failure
from .shadow import ShadowQueries, in_shadow, shadow_check_due, shadow_queries
from .steering import paused_conditions
from .tracks import children, next_wakeup, stale_children
from .triggers import schedule_problem

DEGRADED = "Degraded"
MIN_RETRY_SECONDS, MAX_RETRY_SECONDS = 5.0, 60.0


@dataclass(frozen=True)
class SourceRunRead:
    """The TrainingRun whose spec seeds a retraining run (None: no run in this namespace made the version)."""

    model: str
    version: int
    run_name: str | None


@dataclass(frozen=True)
class DeploymentReads:
    """The outside reads one pass needs; the controller makes exactly these."""

    holder: tuple[str, str] | None = None  # (registered model, alias) to look up in MLflow
    analysis: list[AnalysisQuery] | None = None  # the canary's queries, when an analysis is due
    drift: DriftQueries | None = None
    shadow: ShadowQueries | None = None  # the shadow step's check, when one is due
    performance: PerformanceQueries | None = None
    profile: tuple[str, int] | None = None  # the reference profile behind a builtin drift check
    source: SourceRunRead | None = None


def reads_due(
    meta: Meta,
    spec: DeploymentSpec,
    status: DeploymentStatus,
    tracks: Tracks,
    prometheus_url: str | None,
    serving_run: str | None,
    decided_run_missing: bool,
    now: datetime,
    refused: bool = False,
    policy: CustomQueries = "scoped",
    data: WatchedDataset | None = None,
) -> DeploymentReads:
    """What to read now: the alias holder (alias mode), due analysis and drift queries, the retraining source.
    Nothing when the namespace may not serve the model (`refused`, from the ownership read made first).
    `data` is the Dataset onNewData watches, from the store: a new version needs the source in this pass."""
    if refused:
        return DeploymentReads()
    holder = (spec.model.registered_model, spec.model.alias) if spec.model.alias else None
    analysis = None
    if prometheus_url and analysis_due(spec, status, now) and tracks.canary_ready > 0:
        analysis = analysis_queries(
            meta, spec.strategy.canary.analysis, policy, step_weight(spec, status), step_seconds(status, now)
        )
    shadow = None
    if prometheus_url and tracks.shadow_ready > 0 and shadow_check_due(spec, status, now):
        shadow = shadow_queries(meta, status, now)
    drift = drift_reads(meta, spec, status, now, policy) if prometheus_url else None
    performance = performance_reads(meta, spec, status, now) if prometheus_url else None
    builtin = drift is not None and drift.custom is None and drift.refused is None
    profile = (spec.model.registered_model, drift.version) if drift is not None and builtin else None
    source = None
    if needs_source_spec(spec, status, decided_run_missing, now, data) and status.stable_version is not None:
        source = SourceRunRead(spec.model.registered_model, int(status.stable_version), serving_run)
    return DeploymentReads(
        holder=holder,
        analysis=analysis,
        drift=drift,
        shadow=shadow,
        performance=performance,
        profile=profile,
        source=source,
    )


def plan_deployment(obs: DeploymentObserved, now: datetime) -> Plan:
    """Next status, the serving objects that differ from what is there, Events, effects and the next look."""
    status, plan = obs.status.model_copy(deep=True), Plan(status={})
    status.observed_generation = obs.meta.generation
    if plan_name_conflicts(plan, status, obs.meta, obs.conflicts, now):
        status.phase = status.phase or "Progressing"
        plan.status = status_patch(status)
        return plan
    refused = serving_refusal(obs.meta.namespace, obs.status, obs.ownership)
    if refused is not None:
        return _refused(plan, status, obs, refused, now)
    reader = obs.ownership is not None and obs.ownership.exists and obs.ownership.owner != obs.meta.namespace
    if reader:  # a namespace the owner shares the model with serves it, and promotes or retrains nothing
        obs = replace(obs, approved={})
    problems: list[tuple[str, str]] = []
    plan_rollout(plan, status, obs, now, problems)
    plan_drift(plan, status, obs, now)
    plan_performance(plan, status, obs, now)
    if not reader:
        plan_retraining(plan, status, obs, now)
        invalid_schedule = schedule_problem(obs.spec)  # only Python can tell: the CRD let it in
        if invalid_schedule is not None:
            problems.append(invalid_schedule)
    elif retraining_of(obs.spec) is not None:
        owner = obs.ownership.owner if obs.ownership else None
        message = f"retraining is off: registered model '{obs.spec.model.registered_model}' belongs to {owner}"
        status.retraining = (status.retraining or RetrainingStatus()).model_copy(update={"message": message})
    problems += _outside_problems(status, obs)
    _conditions_and_phase(plan, status, obs, now, problems)
    paused_conditions(obs.meta, obs.spec, status, rfc3339(now))
    existing = {("Deployment", f"{obs.meta.name}-stable"): obs.tracks.stable}
    existing[("Deployment", f"{obs.meta.name}-canary")] = obs.tracks.canary
    existing[("Service", obs.meta.name)] = obs.tracks.service
    existing[("Deployment", f"{obs.meta.name}-shadow")] = obs.tracks.shadow
    existing[("Service", f"{obs.meta.name}-shadow")] = obs.tracks.shadow_service
    existing[("HorizontalPodAutoscaler", f"{obs.meta.name}-stable")] = obs.tracks.autoscaler
    existing[("PodDisruptionBudget", f"{obs.meta.name}-stable")] = obs.tracks.stable_budget
    existing[("PodDisruptionBudget", f"{obs.meta.name}-canary")] = obs.tracks.canary_budget
    plan.applies = [
        c for c in children(status, obs) if needs_update(c, existing.get((c["kind"], c["metadata"]["name"])))
    ]
    plan.deletes = stale_children(obs)
    waits = [w for w in (plan.requeue_after, next_wakeup(status, obs, now), _retry_after(status, now)) if w is not None]
    plan.requeue_after = min(waits) if waits else None
    plan.status = status_patch(status)
    return plan


def serving_refusal(namespace: str, status: DeploymentStatus, ownership: ModelOwnership | None) -> Refusal | None:
    """Why `namespace` may not serve the model, if it may not. While MLflow cannot say (`ownership`
    None), a Deployment that was refused stays refused and one that was serving keeps serving."""
    if ownership is not None:
        return refusal(namespace, ownership, "serve")
    ready = find_typed(status.conditions, "Ready")
    if ready is not None and ready.reason in REFUSED_REASONS:
        return Refusal(ready.reason, ready.message or "", None)
    return None


def _refused(plan: Plan, status: DeploymentStatus, obs: DeploymentObserved, why: Refusal, now: datetime) -> Plan:
    """Serve nothing: scale down any track this Deployment runs, say why, and look again with a back-off."""
    meta, stamp = obs.meta, rfc3339(now)
    previous = find_typed(status.conditions, "Ready")

    def cond(ctype: str, value: ConditionStatus, reason: str, message: str) -> None:
        status.conditions = set_typed(
            status.conditions, ctype, value, reason, message, generation=meta.generation, now=stamp
        )

    status.phase, status.message, status.ready_replicas = "Refused", why.message, 0
    cond("Ready", "False", why.reason, why.message)
    cond("Available", "False", why.reason, "nothing is served")
    cond("Progressing", "False", why.reason, why.message)
    if obs.ownership_error is not None:
        cond(DEGRADED, "True", "MlflowUnavailable", f"{obs.ownership_error}; the model's owner could not be read")
    else:
        cond(DEGRADED, "False", "AsExpected", "every outside system answered")
    if previous is None or previous.reason != why.reason:
        plan.events.append(Event(why.reason, why.message, "Warning"))
    for track in (obs.tracks.stable, obs.tracks.canary):
        if track is not None and (track.get("spec") or {}).get("replicas") != 0:
            # The hash is cleared so that, once allowed, the track is applied again at its full spec.
            # Objects from a list carry no apiVersion/kind: the reference names them.
            ref = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": dict(track["metadata"])}
            plan.patches.append(
                (ref, {"metadata": {"annotations": {ANNOTATION_SPEC_HASH: ""}}, "spec": {"replicas": 0}})
            )
    ready_now = find_typed(status.conditions, "Ready")
    since = parse_time(ready_now.last_transition_time if ready_now else None) or now
    plan.requeue_after = recheck_after((now - since).total_seconds())
    plan.status = status_patch(status)
    return plan


def _outside_problems(status: DeploymentStatus, obs: DeploymentObserved) -> list[tuple[str, str]]:
    """What outside systems keep from working right now, as (reason, message) for Degraded."""
    problems = []
    if obs.prometheus_refused is not None:
        problems.append(("PrometheusNotAllowed", obs.prometheus_refused))
    if obs.ownership_error is not None:
        problems.append(("MlflowUnavailable", f"{obs.ownership_error}; the model's owner could not be read"))
    if obs.holder_error is not None:
        serving = f"version {status.stable_version} keeps serving" if status.stable_version else "nothing serves yet"
        pending = (
            f"; alias '{status.alias_move.alias}' moves to version {status.alias_move.version} when it is back"
            if status.alias_move
            else ""
        )
        problems.append(("MlflowUnavailable", f"{obs.holder_error}; {serving}{pending}"))
    for result in status.analysis or []:
        if result.error is not None and status.canary_version is not None:
            reason = "InvalidQuery" if result.error.startswith("invalid query") else "PrometheusUnavailable"
            problems.append((reason, f"analysis metric '{result.name}': {result.error}"))
    if status.drift is not None and (status.drift.message or "").startswith("drift check failed"):
        problems.append(("DriftCheckFailed", status.drift.message or ""))
    for track, observed in (
        ("stable", obs.tracks.stable),
        ("canary", obs.tracks.canary),
        ("shadow", obs.tracks.shadow),
    ):
        failure = replica_failure(observed)
        if failure is not None:  # the API server refused the pods: the Deployment's spec.pod usually says why
            problems.append(("PodsNotCreated", f"{track} track: {failure}"))
    return problems


def _retry_after(status: DeploymentStatus, now: datetime) -> float | None:
    """While Degraded, look again with a back-off that grows with the outage (5 s up to 60 s)."""
    degraded = find_typed(status.conditions, DEGRADED)
    if degraded is None or degraded.status != "True":
        return None
    since = parse_time(degraded.last_transition_time) or now
    return min(MAX_RETRY_SECONDS, max(MIN_RETRY_SECONDS, (now - since).total_seconds() / 2))


def _conditions_and_phase(
    plan: Plan, status: DeploymentStatus, obs: DeploymentObserved, now: datetime, problems: list[tuple[str, str]]
) -> None:
    meta, spec, stamp = obs.meta, obs.spec, rfc3339(now)
    replicas, tracks = replica_floor(spec), obs.tracks
    ready_total = tracks.stable_ready + tracks.canary_ready
    status.ready_replicas, status.endpoint = ready_total, f"http://{meta.name}.{meta.namespace}.svc"

    def cond(ctype: str, value: ConditionStatus, reason: str, message: str) -> None:
        status.conditions = set_typed(
            status.conditions, ctype, value, reason, message, generation=meta.generation, now=stamp
        )

    previous = find_typed(status.conditions, DEGRADED)
    if problems:
        reason, message = problems[0][0], "; ".join(m for _, m in problems)
        cond(DEGRADED, "True", reason, message)
        if previous is None or previous.status != "True" or previous.reason != reason:
            plan.events.append(Event(reason, message, "Warning"))
    else:
        cond(DEGRADED, "False", "AsExpected", "every outside system answered")
        if previous is not None and previous.status == "True":
            plan.events.append(Event("Recovered", f"recovered from {previous.reason}"))
    canary, stable = status.canary_version, status.stable_version
    available = stable is not None and ready_total >= max(1, replicas) if replicas else stable is not None
    cond(
        "Available",
        "True" if available else "False",
        "MinimumReplicas" if available else "Unavailable",
        f"{ready_total}/{replicas} replicas ready",
    )
    if stable is None:
        message = f"no version of {spec.model.registered_model} to serve yet"
        if spec.model.alias:
            message += f": none holds alias '{spec.model.alias}' or is Approved for it"
        if obs.holder_error is not None:
            message += f" ({obs.holder_error})"
        status.phase, status.message = "Progressing", message
        cond("Progressing", "True", "WaitingForVersion", message)
        cond("Ready", "False", "WaitingForVersion", message)
        return
    if canary is not None and in_shadow(status):
        progress = (status.shadow.message if status.shadow else None) or "started"
        message = f"version {canary} in its shadow step: {progress}"
        status.phase, status.message = "Progressing", message
        cond("Progressing", "True", "ShadowProgressing", message)
        cond("Ready", "False", "ShadowProgressing", message)
        return
    if canary is not None:
        message = f"canary version {canary} at {status.canary_weight}% (step {int(status.step or 0) + 1})"
        if spec.strategy.canary.analysis.metrics and not status.step_analysis_passed:
            message += ", waiting for a passing analysis"
        status.phase, status.message = "Progressing", message
        cond("Progressing", "True", "CanaryProgressing", message)
        cond("Ready", "False", "CanaryProgressing", message)
        return
    held = next((m for r, m in problems if r == "AnalysisNotConfigured"), None)
    rolled_back = status.rolled_back_version
    last_rollback = status.rollbacks[-1] if status.rollbacks else None
    if rolled_back is not None:
        status.phase = "RolledBack"
        reason = last_rollback.reason if last_rollback is not None else "AnalysisFailed"
        cond("RolledBack", "True", reason, status.message or f"version {rolled_back} rolled back")
    else:
        cond("RolledBack", "False", "NoRollback", "no canary has been rolled back")
    if tracks.stable_ready >= replicas:
        if rolled_back is None:
            status.phase, status.message = "Healthy", f"version {stable} serves on {tracks.stable_ready} replicas"
        if held is not None:
            cond("Progressing", "False", "AnalysisNotConfigured", held)
        else:
            cond("Progressing", "False", "Stable", f"version {stable} is stable")
        cond("Ready", "True", "Stable", f"version {stable} serves on {tracks.stable_ready}/{replicas} replicas")
    else:
        if rolled_back is None:
            status.phase, status.message = "Progressing", f"version {stable}: {tracks.stable_ready}/{replicas} ready"
        cond("Progressing", "True", "ScalingStable", f"version {stable}: {tracks.stable_ready}/{replicas} ready")
        cond("Ready", "False", "ScalingStable", f"version {stable}: {tracks.stable_ready}/{replicas} ready")
