"""Deployment controller (deployments.mlops.dev): gather every read into one Observed, plan, act.

The reads are the ones `planning.deployment.reads_due` names; each outside read (MLflow, Prometheus,
the API) ends as a value or an error in the Observed, never as an exception, so an outage is data the
planner decides on and children and status are still applied.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import kopf

from .. import contract
from ..api.common import GROUP, VERSION
from ..api.deployment import DeploymentSpec, DeploymentStatus
from ..integrations.mlflow import MlflowError
from ..integrations.prometheus import Prometheus, PrometheusError
from ..kubeapi import ApiError
from ..planning.analysis import MetricReading
from ..planning.approval import field_manager
from ..planning.conflicts import foreign
from ..planning.deployment import DeploymentReads, SourceRunRead, plan_deployment, reads_due, serving_refusal
from ..planning.observed import (
    DeploymentObserved,
    DriftReadings,
    PerformanceReadings,
    RetrainingObserved,
    Series,
    Tracks,
)
from ..planning.ownership import ModelOwnership
from ..planning.plan import Meta, Obj, Plan
from ..planning.serving import ServerSettings, track_name
from ..planning.shadow import ShadowReadings
from ..planning.trainingrun import model_version_name
from ..planning.triggers import watched_dataset, watched_dataset_name
from . import metrics
from .children import STORE_KINDS, collection_of
from .runtime import Runtime, runtime

MAX_CACHED_PROFILES = 256


def parse(body: Obj) -> tuple[Meta, DeploymentSpec, DeploymentStatus]:
    """The object as the typed API models (defaults filled in by them, not restated here)."""
    return (
        Meta.of(body),
        DeploymentSpec.model_validate(body["spec"]),
        DeploymentStatus.model_validate(body.get("status") or {}),
    )


async def reconcile_deployment(rt: Runtime, body: Obj) -> Plan:
    """Gather, then plan; the runtime applies the plan."""
    now = datetime.now(UTC)
    observed = await gather(rt, body, now)
    plan = plan_deployment(observed, now)
    if observed.drift is not None:
        _export_drift_scores(observed.meta, plan.status)
    metrics.export_deployment_status(observed.meta.namespace, observed.meta.name, plan.status)
    return plan


async def gather(rt: Runtime, body: Obj, now: datetime) -> DeploymentObserved:
    """Every read one pass needs: the store's view, then exactly the outside reads the planner asks for."""
    meta, spec, status = parse(body)
    model = spec.model
    tracks = _tracks(rt, meta)
    approved = rt.store.approved_versions(meta.namespace, model.registered_model, model.alias) if model.alias else {}
    prometheus_url, prometheus_refused = rt.settings.prometheus_for(
        spec.monitoring.prometheus_url if spec.monitoring else None
    )
    last_name = status.retraining.run if status.retraining else None
    last_run = rt.store.get("TrainingRun", meta.namespace, last_name) if last_name else None
    version_name = ((last_run or {}).get("status") or {}).get("modelVersion")
    last_version = rt.store.get("ModelVersion", meta.namespace, version_name) if version_name else None
    serving_run = None
    if status.stable_version is not None:
        serving_mv = rt.store.get(
            "ModelVersion", meta.namespace, model_version_name(model.registered_model, status.stable_version)
        )
        serving_run = (((serving_mv or {}).get("spec") or {}).get("source") or {}).get("trainingRunRef")
    serving_summary = rt.store.get("TrainingRun", meta.namespace, serving_run) if serving_run else None
    watched = watched_dataset_name(spec, serving_summary)
    data = None
    if watched is not None:
        dataset = rt.store.get("Dataset", meta.namespace, watched)
        data = watched_dataset(watched, dataset, serving_summary, last_run)
    ownership, ownership_error = await _ownership(rt, model.registered_model)
    refused = serving_refusal(meta.namespace, status, ownership) is not None
    reads = reads_due(
        meta,
        spec,
        status,
        tracks,
        prometheus_url,
        serving_run,
        bool(last_name) and last_run is None,
        now,
        refused,
        rt.settings.custom_queries,
        data,
    )

    holder_version, holder_error = await _holder(rt, reads)
    analysis, drift, shadow = None, None, None
    performance = None
    wanted = (reads.analysis, reads.drift, reads.performance, reads.shadow)
    if prometheus_url and any(read is not None for read in wanted):
        prometheus = Prometheus(prometheus_url)
        try:
            analysis = await _analysis(prometheus, reads)
            drift = await _drift(rt, prometheus, reads)
            performance = await _performance(prometheus, reads)
            shadow = await _shadow(prometheus, reads)
        finally:
            await prometheus.aclose()
    source = await _source(rt, meta.namespace, reads.source)
    conflicts = await rt.name_conflicts(meta.uid)
    return DeploymentObserved(
        meta=meta,
        spec=spec,
        status=status,
        server=ServerSettings(
            image=rt.settings.server_image,
            tracking_uri=rt.settings.tracking_uri,
            credentials_secret=rt.settings.workload_secret,
            feedback_secret=rt.settings.feedback_secret,
            pod_defaults=rt.settings.workload_pod,
        ),
        prometheus_url=prometheus_url,
        prometheus_refused=prometheus_refused,
        tracks=tracks,
        approved=approved,
        holder_version=holder_version,
        holder_error=holder_error,
        ownership=ownership,
        ownership_error=ownership_error,
        analysis=analysis,
        drift=drift,
        performance=performance,
        shadow=shadow,
        retraining=RetrainingObserved(last_run, last_version, *source, dataset=data),
        conflicts=conflicts,
        requested_by=_requester(body),
    )


def _requester(body: Obj) -> str | None:
    """Who last wrote spec.rolloutRequest, for the record of the request (the user is in the audit log)."""
    if not (body.get("spec") or {}).get("rolloutRequest"):
        return None
    entry = field_manager(body.get("metadata") or {}, "rolloutRequest")
    return str(entry.get("manager") or "unknown") if entry is not None else None


def _tracks(rt: Runtime, meta: Meta) -> Tracks:
    """The serving objects from the store; one this Deployment does not control is a name conflict, not a track."""
    found: dict[str, Obj | None] = {}
    for field, api_version, kind, name in (
        ("stable", "apps/v1", "Deployment", track_name(meta.name, "stable")),
        ("canary", "apps/v1", "Deployment", track_name(meta.name, "canary")),
        ("service", "v1", "Service", meta.name),
        ("shadow", "apps/v1", "Deployment", track_name(meta.name, "shadow")),
        ("shadow_service", "v1", "Service", track_name(meta.name, "shadow")),
        ("autoscaler", "autoscaling/v2", "HorizontalPodAutoscaler", track_name(meta.name, "stable")),
        ("stable_budget", "policy/v1", "PodDisruptionBudget", track_name(meta.name, "stable")),
        ("canary_budget", "policy/v1", "PodDisruptionBudget", track_name(meta.name, "canary")),
    ):
        obj = rt.store.get(STORE_KINDS.get(kind, kind), meta.namespace, name)
        conflict = foreign(kind, obj, meta.uid)
        if conflict is not None:
            child = {"apiVersion": api_version, "kind": kind, "metadata": {"namespace": meta.namespace}}
            rt.note_conflict(meta.uid, f"{collection_of(child)}/{name}", conflict)
            obj = None
        found[field] = obj
    return Tracks(**found)


async def _ownership(rt: Runtime, model: str) -> tuple[ModelOwnership | None, str | None]:
    try:
        return ModelOwnership.of(model, await rt.mlflow.registered_model(model)), None
    except MlflowError as error:
        return None, str(error)


async def _holder(rt: Runtime, reads: DeploymentReads) -> tuple[int | None, str | None]:
    if reads.holder is None:
        return None, None
    try:
        return await rt.mlflow.alias_version(*reads.holder), None
    except MlflowError as error:
        return None, str(error)


async def _analysis(prometheus: Prometheus, reads: DeploymentReads) -> list[MetricReading] | None:
    if reads.analysis is None:
        return None
    readings = []
    for query in reads.analysis:
        if query.refused is not None:  # never sent: the query could not be scoped to the namespace
            readings.append(MetricReading(query.metric, error=query.refused, invalid_query=True))
            continue
        if query.feedback is not None:  # live quality: every version's and track's labels since the step began
            try:
                series = {name: await prometheus.vector(promql) for name, promql in query.feedback.items()}
            except PrometheusError as error:
                readings.append(MetricReading(query.metric, error=str(error), invalid_query=error.invalid_query))
            else:
                readings.append(MetricReading(query.metric, series=series))
            continue
        try:
            readings.append(MetricReading(query.metric, value=await prometheus.scalar(query.promql)))
        except PrometheusError as error:
            readings.append(MetricReading(query.metric, error=str(error), invalid_query=error.invalid_query))
    return readings


async def _drift(rt: Runtime, prometheus: Prometheus, reads: DeploymentReads) -> DriftReadings | None:
    queries = reads.drift
    if queries is None:
        return None
    if queries.refused is not None:
        return DriftReadings(queries.version, error=queries.refused)
    try:
        if queries.custom is not None:
            return DriftReadings(queries.version, custom=await prometheus.vector(queries.custom))
        assert queries.bins is not None and queries.nulls is not None and reads.profile is not None
        profile = await reference_profile(rt, *reads.profile)
        bins: Series = await prometheus.vector(queries.bins)
        nulls: Series = await prometheus.vector(queries.nulls)
        return DriftReadings(queries.version, profile=profile, bins=bins, nulls=nulls)
    except (PrometheusError, MlflowError) as error:
        return DriftReadings(queries.version, error=str(error))


async def _performance(prometheus: Prometheus, reads: DeploymentReads) -> PerformanceReadings | None:
    queries = reads.performance
    if queries is None:
        return None
    try:
        series = {name: await prometheus.vector(promql) for name, promql in queries.queries.items()}
    except PrometheusError as error:
        return PerformanceReadings(queries.version, error=str(error))
    return PerformanceReadings(queries.version, series=series)


async def _shadow(prometheus: Prometheus, reads: DeploymentReads) -> ShadowReadings | None:
    queries = reads.shadow
    if queries is None:
        return None
    values: dict[str, float | None] = {}
    try:
        outcomes = {s.get("outcome", ""): v for s, v in await prometheus.vector(queries.queries["requests"])}
        for name, promql in queries.queries.items():
            if name != "requests":
                series = await prometheus.vector(promql)
                values[name] = sum(v for _, v in series) if series else None
    except PrometheusError as error:
        return ShadowReadings(queries.version, error=str(error))
    return ShadowReadings(queries.version, values=values, by_outcome=outcomes)


async def reference_profile(rt: Runtime, model: str, version: int) -> Obj:
    """The reference profile of a registered version (immutable, so cached by version)."""
    key = (rt.mlflow.tracking_uri, model, version)
    cached = rt.profiles.get(key)
    if cached is not None:
        return cached
    registered = await rt.mlflow.model_version(model, version)
    if registered is None:
        raise MlflowError(f"{model} version {version} is not in the MLflow registry")
    uri = {t["key"]: t["value"] for t in registered.get("tags") or []}.get(contract.TAG_PROFILE_URI)
    if not uri:
        raise MlflowError(f"{model} version {version} has no reference profile (tag {contract.TAG_PROFILE_URI})")
    profile = await rt.mlflow.run_artifact_json(uri)
    if not isinstance(profile.get("features"), dict):
        raise MlflowError(f"the reference profile {uri} has no 'features'")
    if len(rt.profiles) >= MAX_CACHED_PROFILES:
        rt.profiles.pop(next(iter(rt.profiles)))
    rt.profiles[key] = profile
    return profile


async def _source(rt: Runtime, namespace: str, read: SourceRunRead | None) -> tuple[Obj | None, str | None, bool]:
    """(spec, error, read) of the TrainingRun behind the serving version, when retraining may need it."""
    if read is None:
        return None, None, False
    if read.run_name is None:
        return None, f"version {read.version} of {read.model} was not produced by a TrainingRun in {namespace}", True
    try:
        run = await rt.get("TrainingRun", namespace, read.run_name)
    except (ApiError, httpx.HTTPError) as error:  # an API failure is data too: the planner waits and says why
        return None, f"TrainingRun {read.run_name} could not be read: {error}", True
    if run is None:
        return None, f"TrainingRun {read.run_name}, which produced version {read.version}, no longer exists", True
    return dict(run["spec"]), None, True


def _export_drift_scores(meta: Meta, status: Obj) -> None:
    drift = status.get("drift") or {}
    metrics.export_drift_scores(meta.namespace, meta.name, drift.get("method") or "", drift.get("scores") or {})


@kopf.on.event(GROUP, VERSION, "deployments")  # type: ignore[arg-type]
async def deployment_changed(type: str, body: kopf.Body, namespace: str, name: str, **_: Any) -> None:
    """Any change to a deployments.mlops.dev object reconciles it."""
    rt = runtime()
    rt.event("Deployment", type, dict(body))
    if type != "DELETED":
        _wake_rolled_back(rt, namespace, dict(body))


def _wake_rolled_back(rt: Runtime, namespace: str, body: Obj) -> None:
    """A rollback this Deployment recorded reaches its ModelVersion once the store has this status: wake it then."""
    model = (body.get("spec") or {}).get("model") or {}
    for rollback in ((body.get("status") or {}).get("rollbacks") or [])[-1:]:
        name = model_version_name(str(model.get("registeredModel")), int(rollback.get("version") or 0))
        version = rt.store.get("ModelVersion", namespace, name)
        if version is not None and version["status"].get("phase") not in ("RolledBack", "Promoted", "Rejected"):
            rt.requeue(("ModelVersion", namespace, name), 0.0)
