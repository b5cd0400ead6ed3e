"""The reads behind drift monitoring and retraining: reference profiles from MLflow, live bins from Prometheus."""

from __future__ import annotations

from .. import contract
from ..api.common import parse_duration
from ..drift import NULL_BIN, DriftReport, FeatureScore, drift_report
from ..integrations.mlflow import MlflowError
from ..integrations.prometheus import Prometheus, PrometheusError, custom_query, drift_queries
from ..planning.monitoring import DriftCheck, drift_settings
from ..planning.plan import Obj
from ..planning.retraining import RetrainingObserved, retraining_settings
from ..planning.trainingrun import model_version_name
from . import metrics
from .runtime import Runtime

MAX_CACHED_PROFILES = 256


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


async def check_drift(rt: Runtime, body: Obj, version: int) -> DriftCheck:
    """Score the stable track's live inputs over the window: the builtin statistic, or the user's query."""
    meta, spec = body["metadata"], body["spec"]
    settings = drift_settings(spec)
    assert settings is not None
    url = (spec.get("monitoring") or {}).get("prometheusUrl") or rt.settings.prometheus_url
    if not url:
        return DriftCheck(version, error="no Prometheus configured (spec.monitoring.prometheusUrl)")
    window = f"{int(parse_duration(settings['window']).total_seconds())}s"
    prometheus = Prometheus(url)
    try:
        if settings["query"]:
            query = custom_query(settings["query"], meta["namespace"], meta["name"], "stable", window, str(version))
            report = _custom_report(await prometheus.vector(query))
        else:
            profile = await reference_profile(rt, spec["model"]["registeredModel"], version)
            bins, nulls = drift_queries(meta["namespace"], meta["name"], version, window)
            live: dict[str, dict[str, float]] = {}
            for labels, value in await prometheus.vector(bins):
                live.setdefault(labels.get("feature", ""), {})[labels.get("bin", "")] = value
            for labels, value in await prometheus.vector(nulls):
                live.setdefault(labels.get("feature", ""), {})[NULL_BIN] = value
            report = drift_report(profile, live, settings["method"], settings["minSamples"])
    except (PrometheusError, MlflowError) as error:
        return DriftCheck(version, error=str(error))
    finally:
        await prometheus.aclose()
    for feature_score in report.scores:
        metrics.DRIFT_SCORE.labels(meta["namespace"], meta["name"], feature_score.feature, report.method).set(
            feature_score.score
        )
    return DriftCheck(version, report=report)


def _custom_report(series: list[tuple[dict[str, str], float]]) -> DriftReport:
    """The highest series of a user's drift query; its `feature` label, if any, names the feature."""
    finite = [(labels, value) for labels, value in series if value == value]
    if not finite:
        return DriftReport(method="query", message="the drift query returned no data")
    labels, value = max(finite, key=lambda item: item[1])
    top = FeatureScore(labels.get("feature", "query"), value, 0)
    return DriftReport(method="query", scores=[top], message="scored by spec.monitoring.drift.query")


async def retraining_observed(rt: Runtime, body: Obj, need_source: bool) -> RetrainingObserved:
    """The last retraining run and its version from the store; the serving version's run spec if asked for."""
    meta, spec, status = body["metadata"], body["spec"], body.get("status") or {}
    if retraining_settings(spec) is None:
        return RetrainingObserved()
    namespace = meta["namespace"]
    last_name = (status.get("retraining") or {}).get("run")
    last_run = rt.store.get("TrainingRun", namespace, last_name) if last_name else None
    version_name = ((last_run or {}).get("status") or {}).get("modelVersion")
    last_version = rt.store.get("ModelVersion", namespace, version_name) if version_name else None
    source_spec, source_error = None, None
    stable = status.get("stableVersion")
    if need_source and not (spec.get("retraining") or {}).get("trainingRunTemplate") and stable is not None:
        source_spec, source_error = await _serving_run_spec(rt, namespace, spec["model"]["registeredModel"], stable)
    return RetrainingObserved(last_run, last_version, source_spec, source_error)


async def _serving_run_spec(rt: Runtime, namespace: str, model: str, version: int) -> tuple[Obj | None, str | None]:
    mv_name = model_version_name(model, version)
    mv = rt.store.get("ModelVersion", namespace, mv_name)
    run_name = (((mv or {}).get("spec") or {}).get("source") or {}).get("trainingRunRef")
    if not run_name:
        return None, f"version {version} of {model} was not produced by a TrainingRun in {namespace}"
    run = await rt.get("TrainingRun", namespace, run_name)
    if run is None:
        return None, f"TrainingRun {run_name}, which produced version {version}, no longer exists"
    return dict(run["spec"]), None
