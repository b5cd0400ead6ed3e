"""Outside systems failing under a running rollout, on the real local cluster.

Prometheus, MLflow and the API server are stopped mid-canary (and MLflow mid-training) through the
cluster's own process management and started again; a custom analysis query that Prometheus cannot
parse; canaries whose pods never become Ready, or that never get analysis data. Each test asserts
what a user sees: status fields and conditions, Events, which versions the Ready pods serve, the
alias in MLflow, and that nothing was created twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlops_operator import contract
from mlops_operator.worker.sample_data import write_sample

from tests.fixtures.cluster import Kube, wait_for
from tests.fixtures.faults import (
    ComponentOutage,
    StatusRecorder,
    condition_is,
    events_about,
    local_cluster_config,
    mlflow_alias,
    mlflow_registered_versions,
    operator_for,
    predict,
    ready_pods,
    reasons,
    register_second_version,
    register_unloadable,
    serve_first_version,
    serving_deployment,
    start_traffic,
    status_condition,
)
from tests.integration.test_serving import model_version_manifest
from tests.integration.test_training import iris_dataset, sample_data, training_run

pytestmark = pytest.mark.cluster

ERROR_LIMIT = 2  # strategy.canary.analysis.consecutiveErrorLimit in these tests (the default is 4)
ERROR_RATE = {"name": "error-rate", "builtin": "errorRate", "max": 0.05}
Status = dict[str, Any]
Obj = dict[str, Any]


def ts(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").timestamp()


def canary_of(version: int) -> Callable[[Status], bool]:
    return lambda s: s.get("canaryVersion") == version


def aborted(version: int) -> Callable[[Status], bool]:
    """The canary of `version` was aborted (for whatever reason: the test asserts the reason afterwards)."""

    def check(s: Status) -> bool:
        last = (s.get("rollbacks") or [{}])[-1]
        return last.get("version") == version and s.get("canaryVersion") is None

    return check


def model_version_phase(kube: Kube, namespace: str, name: str) -> str | None:
    obj = kube.json("get", f"modelversion/{name}", "-n", namespace)
    return (obj.get("status") or {}).get("phase")


def assert_rolled_back_to_stable(
    kube: Kube, namespace: str, model: str, stable: int, canary: int, reason: str, final: Status
) -> None:
    """The contract of an aborted canary: recorded with its reason, announced, stable still serving, alias kept."""
    assert final["stableVersion"] == stable and final.get("canaryVersion") is None, final
    last = final["rollbacks"][-1]
    assert last["version"] == canary and last["reason"] == reason, final["rollbacks"]
    rolled = status_condition(final, "RolledBack")
    assert rolled is not None and rolled["status"] == "True" and rolled["reason"] == reason, final["conditions"]
    events = events_about(kube, namespace, "Deployment", "iris")
    warnings = [e for e in events if e["reason"] == "RolledBack"]
    assert warnings and all(e["type"] == "Warning" for e in warnings), reasons(events)
    assert mlflow_alias(kube, model) == stable
    wait_for(
        f"both replicas Ready on stable version {stable}",
        lambda: (
            (pods := ready_pods(kube, namespace))
            and len(pods) == 2
            and {(p.track, p.version) for p in pods} == {("stable", stable)}
        ),
        timeout=90,
    )
    wait_for(
        f"ModelVersion {model}-{canary} RolledBack",
        lambda: model_version_phase(kube, namespace, f"{model}-{canary}") == "RolledBack",
        timeout=60,
    )


@pytest.mark.outage
@pytest.mark.timeout(600)
def test_prometheus_stopped_mid_analysis_degrades_then_aborts_at_the_error_limit(
    crds_installed: Kube, namespace: str, tmp_path: Path
) -> None:
    kube, model, cfg = crds_installed, f"prom-{namespace}", local_cluster_config()
    data = tmp_path / "iris.csv"
    write_sample("iris", data)
    manifest = serving_deployment(
        model,
        [{"weight": 50, "pause": "300s"}, {"weight": 100}],  # a long first step: the outage lands mid-canary
        metrics=[ERROR_RATE],
        interval="10s",
        error_limit=ERROR_LIMIT,
    )
    with operator_for(kube, namespace, tmp_path / "operator.log") as op, ComponentOutage(cfg, "prometheus") as prom:
        rec = StatusRecorder(kube, namespace, op)
        v1 = serve_first_version(kube, namespace, model, manifest, rec)
        traffic = start_traffic(kube, namespace, data)
        try:
            v2 = register_second_version(kube, namespace, model)
            rec.wait(
                "an analysis of canary 2 that judged error-rate from data",
                lambda s: canary_of(v2)(s) and any(r.get("passed") is not None for r in s.get("analysis") or []),
                timeout=180,
            )
            prom.stop()
            assert prom.stopped_at is not None
            final = rec.wait("the canary to be aborted", aborted(v2), timeout=120)
            aborted_after = time.monotonic() - prom.stopped_at
        finally:
            traffic.stop()
        print(f"\nPrometheus stopped -> canary aborted: {aborted_after:.1f}s; {final['rollbacks'][-1]}")
        assert final["rollbacks"][-1]["reason"] == "AnalysisErrors", final["rollbacks"]

        # While the canary still ran: erred analyses, counted, and Degraded saying Prometheus is unreachable.
        erred = rec.seen(lambda s: canary_of(v2)(s) and any(r.get("error") for r in s.get("analysis") or []))
        assert erred, "no status showed an erred analysis before the abort"
        errors = {r["error"] for s in erred for r in s["analysis"] if r.get("error")}
        assert all("Prometheus" in e and ("unreachable" in e or "timed out" in e) for e in errors), errors
        assert sorted({int(s.get("analysisErrors") or 0) for s in erred}) == list(range(1, ERROR_LIMIT)), [
            (s.get("lastAnalysisAt"), s.get("analysisErrors")) for s in erred
        ]
        degraded = [s for s in erred if condition_is(s, "Degraded", "True", "PrometheusUnavailable")]
        assert degraded, "Degraded never turned True with reason PrometheusUnavailable while the canary ran"
        message = status_condition(degraded[0], "Degraded")["message"]  # type: ignore[index]
        assert "error-rate" in message and "Prometheus" in message, message
        # The abort came at the limit: ERROR_LIMIT erred analyses, one interval apart, after the stop.
        assert aborted_after <= ERROR_LIMIT * 10 + 20, f"aborted {aborted_after:.0f}s after Prometheus stopped"
        assert_rolled_back_to_stable(kube, namespace, model, v1, v2, "AnalysisErrors", final)

        prom.start()
        back = time.monotonic()
        rec.wait("Degraded False with Prometheus back", lambda s: condition_is(s, "Degraded", "False"), timeout=90)
        print(f"Prometheus back -> Degraded False: {time.monotonic() - back:.1f}s")
        after = rec.poll()
        assert after is not None and after["stableVersion"] == v1 and after.get("canaryVersion") is None


@pytest.mark.timeout(480)
def test_invalid_analysis_query_is_named_in_degraded_and_aborts_at_the_error_limit(
    crds_installed: Kube, namespace: str, tmp_path: Path
) -> None:
    kube, model = crds_installed, f"badq-{namespace}"
    manifest = serving_deployment(
        model,
        [{"weight": 50, "pause": "300s"}, {"weight": 100}],
        metrics=[{"name": "broken-query", "query": "sum(rate(foo[1m]", "max": 1}],
        interval="10s",
        error_limit=ERROR_LIMIT,
    )
    with operator_for(kube, namespace, tmp_path / "operator.log") as op:
        rec = StatusRecorder(kube, namespace, op)
        v1 = serve_first_version(kube, namespace, model, manifest, rec)
        v2 = register_second_version(kube, namespace, model)
        final = rec.wait("the canary to be aborted", aborted(v2), timeout=180)
        invalid = rec.seen(lambda s: canary_of(v2)(s) and condition_is(s, "Degraded", "True", "InvalidQuery"))
        assert invalid, "Degraded never turned True with reason InvalidQuery while the canary ran: " + str(
            [status_condition(s.status, "Degraded") for s in rec.snapshots]
        )
        message = status_condition(invalid[0], "Degraded")["message"]  # type: ignore[index]
        print(f"\nDegraded InvalidQuery: {message}")
        started = rec.first(canary_of(v2))
        assert started is not None
        abort_seconds = ts(final["rollbacks"][-1]["at"]) - ts(started.status["stepStartedAt"])
        print(f"canary start -> abort ({final['rollbacks'][-1]['reason']}): {abort_seconds:.0f}s")
        # The operator's PromQL parser refuses it before anything is sent (the query is never scoped, so never run).
        assert "broken-query" in message and "not valid PromQL: unclosed left parenthesis" in message, message
        assert len(message) < 500 and '"errorType"' not in message and '"status"' not in message, message
        erred = [r for s in invalid for r in s.get("analysis") or [] if r.get("error")]
        assert erred and all(r["name"] == "broken-query" and r.get("passed") is None for r in erred), erred
        assert_rolled_back_to_stable(kube, namespace, model, v1, v2, "AnalysisErrors", final)


@pytest.mark.outage
@pytest.mark.timeout(600)
def test_mlflow_stopped_mid_promotion_keeps_serving_and_moves_the_alias_once(
    crds_installed: Kube, namespace: str, tmp_path: Path
) -> None:
    kube, model, cfg = crds_installed, f"mlf-{namespace}", local_cluster_config()
    # One step at 50%: the canary completes (and decides the alias move) while MLflow is still down.
    manifest = serving_deployment(model, [{"weight": 50, "pause": "45s"}])
    with operator_for(kube, namespace, tmp_path / "operator.log") as op, ComponentOutage(cfg, "mlflow") as outage:
        rec = StatusRecorder(kube, namespace, op)
        v1 = serve_first_version(kube, namespace, model, manifest, rec)
        v2 = register_second_version(kube, namespace, model)
        rec.wait("the canary of version 2", canary_of(v2), timeout=60)
        wait_for(
            "a Ready canary pod serving version 2",
            lambda: [p for p in ready_pods(kube, namespace, track="canary") if p.version == v2],
            timeout=120,
        )
        outage.stop()
        degraded = rec.wait(
            "Degraded MlflowUnavailable",
            lambda s: condition_is(s, "Degraded", "True", "MlflowUnavailable"),
            timeout=60,
        )
        message = status_condition(degraded, "Degraded")["message"]  # type: ignore[index]
        print(f"\nDegraded while MLflow is down: {message}")
        assert "keeps serving" in message, message
        stable_pods = ready_pods(kube, namespace, track="stable")
        assert stable_pods and {p.version for p in stable_pods} == {v1}, stable_pods
        for pod in stable_pods:
            answer = predict(pod)
            assert answer.status_code == 200 and len(answer.json()["predictions"]) == 3, answer.text

        pending = rec.wait(
            "the canary completed with the alias move recorded and waiting for MLflow",
            lambda s: (
                s.get("stableVersion") == v2
                and s.get("canaryVersion") is None
                and (s.get("aliasMove") or {}).get("version") == v2
            ),
            timeout=120,
        )
        assert outage.down, "MLflow came back before the alias move was due"
        assert condition_is(pending, "Degraded", "True", "MlflowUnavailable"), pending.get("conditions")
        serving = ready_pods(kube, namespace)
        assert serving and {p.version for p in serving} <= {v1, v2}, serving
        for pod in serving:  # the hand-over keeps Ready pods serving while new ones cannot load their model
            assert predict(pod).status_code == 200, pod

        outage.start()
        back = time.monotonic()
        final = rec.wait(
            "the alias move confirmed and version 2 Healthy",
            lambda s: (
                s.get("phase") == "Healthy"
                and s.get("stableVersion") == v2
                and not s.get("aliasMove")
                and condition_is(s, "Degraded", "False")
            ),
            timeout=240,
        )
        print(f"MLflow back -> alias moved and Healthy on version {v2}: {time.monotonic() - back:.1f}s")
        assert final.get("canaryVersion") is None
        assert mlflow_alias(kube, model) == v2
        wait_for(
            f"ModelVersion {model}-{v2} Promoted",
            lambda: model_version_phase(kube, namespace, f"{model}-{v2}") == "Promoted",
            timeout=60,
        )
        moved = [e for e in events_about(kube, namespace, "Deployment", "iris") if e["reason"] == "AliasMoved"]
        assert len(moved) == 1 and f"version {v2}" in moved[0]["message"], [e["message"] for e in moved]
        assert op.metric("mlops_operator_promotions_total", via="canary") == 1
        assert op.metric("mlops_operator_promotions_total", via="direct") == 0
        wait_for(
            "both replicas Ready on version 2",
            lambda: (pods := ready_pods(kube, namespace)) and len(pods) == 2 and {p.version for p in pods} == {v2},
            timeout=120,
        )


def worker_runs(kube: Kube, job: str) -> list[Obj]:
    """The MLflow runs a training Job's pods created (tag mlops.dev/job), from MLflow's REST API."""
    found = httpx.get(
        f"{kube.mlflow_url}/api/2.0/mlflow/experiments/get-by-name",
        params={"experiment_name": contract.EXPERIMENT_TRAINING},
        timeout=5,
    )
    if found.status_code != 200:
        return []
    response = httpx.post(
        f"{kube.mlflow_url}/api/2.0/mlflow/runs/search",
        json={
            "experiment_ids": [found.json()["experiment"]["experiment_id"]],
            "filter": f"tags.`{contract.TAG_JOB}` = '{job}'",
        },
        timeout=5,
    )
    response.raise_for_status()
    return list(response.json().get("runs", []))


@pytest.mark.outage
@pytest.mark.timeout(600)
def test_mlflow_stopped_mid_training_never_registers_a_version_twice(
    crds_installed: Kube, namespace: str, tmp_path: Path
) -> None:
    kube, model, cfg = crds_installed, f"mlt-{namespace}", local_cluster_config()
    data = sample_data("iris", tmp_path / "iris.csv")
    # Three retries of the pod (Job backoff 10 s, 20 s, 40 s): a later one can find MLflow back.
    run_manifest = training_run("mid", model).replace("backoffLimit: 1", "backoffLimit: 3")
    manifest = iris_dataset(f"file://{data}") + "---\n" + run_manifest
    with operator_for(kube, namespace, tmp_path / "operator.log") as op, ComponentOutage(cfg, "mlflow") as outage:
        kube.apply(manifest, namespace)

        def job_name() -> str | None:
            assert op.running(), op.log_tail()
            return (kube.json("get", "trainingrun/mid", "-n", namespace).get("status") or {}).get("jobName")

        job = str(wait_for("the training Job", job_name, timeout=300, interval=0.5))
        # Mid-training: the worker has created its MLflow run and is fitting, logging and registering.
        wait_for("the worker's MLflow run", lambda: worker_runs(kube, job), timeout=240, interval=0.2)
        registered_before = mlflow_registered_versions(kube, model)
        outage.stop()
        print(f"\nMLflow stopped mid-run (registered versions at that moment: {registered_before})")
        outage.start()

        def terminal() -> str | None:
            assert op.running(), op.log_tail()
            phase = (kube.json("get", "trainingrun/mid", "-n", namespace).get("status") or {}).get("phase")
            return phase if phase in ("Succeeded", "Failed") else None

        outcome = wait_for("the TrainingRun to finish", terminal, timeout=420, interval=1)
        run = kube.json("get", "trainingrun/mid", "-n", namespace)
        job_status = kube.json("get", f"job/{job}", "-n", namespace)["status"]
        runs = worker_runs(kube, job)
        print(f"TrainingRun after an MLflow outage mid-run: {outcome}: {run['status'].get('message')}")
        print(f"Job {job}: succeeded={job_status.get('succeeded')} failed={job_status.get('failed')}")
        print("worker runs: " + ", ".join(f"{r['info']['run_id'][:8]} {r['info']['status']}" for r in runs))
        versions = mlflow_registered_versions(kube, model)
        modelversions = kube.json("get", "modelversions", "-n", namespace)["items"]
        jobs = kube.json("get", "jobs", "-n", namespace, "-l", "mlops.dev/owner-kind=TrainingRun")["items"]
        assert [j["metadata"]["name"] for j in jobs] == [job], "a second training Job was created"
        if outcome == "Failed":
            assert "mlflow" in run["status"]["message"].lower(), run["status"]
            assert len(versions) <= 1 and len(modelversions) <= 1, (versions, modelversions)
        else:
            assert versions == [1], f"registered versions after the outage: {versions}"
            assert [m["spec"]["version"] for m in modelversions] == [1]
            mv = run["status"]["modelVersion"]
            wait_for(
                f"ModelVersion {mv} Promoted",
                lambda: model_version_phase(kube, namespace, mv) == "Promoted",
                timeout=90,
            )
            assert mlflow_alias(kube, model) == 1
        assert sum(r["info"]["status"] == "FINISHED" for r in runs) <= 1, "two worker runs finished"


@pytest.mark.outage
@pytest.mark.timeout(600)
def test_apiserver_restarted_mid_canary_continues_without_repeating_a_step(
    crds_installed: Kube, namespace: str, tmp_path: Path
) -> None:
    kube, model, cfg = crds_installed, f"api-{namespace}", local_cluster_config()
    manifest = serving_deployment(model, [{"weight": 50, "pause": "20s"}, {"weight": 100, "pause": "10s"}])
    with (
        operator_for(kube, namespace, tmp_path / "operator.log") as op,
        ComponentOutage(cfg, "kube-apiserver") as api,
    ):
        rec = StatusRecorder(kube, namespace, op)
        v1 = serve_first_version(kube, namespace, model, manifest, rec)
        v2 = register_second_version(kube, namespace, model)
        rec.wait("the canary of version 2", canary_of(v2), timeout=60)
        api.stop()
        # Down past the leader Lease's renew deadline (10 s): the operator stops leading, then leads again.
        time.sleep(15)
        api.start()
        back = time.monotonic()
        rec.wait(
            "the canary completed and version 2 Healthy",
            lambda s: (
                s.get("phase") == "Healthy"
                and s.get("stableVersion") == v2
                and s.get("canaryVersion") is None
                and not s.get("aliasMove")
            ),
            timeout=240,
        )
        converged = time.monotonic() - back
        print(
            f"\nAPI server restart took {api.restart_seconds:.1f}s; back -> Healthy on version {v2}: {converged:.1f}s"
        )
        starts = rec.step_starts()
        print(f"stepStartedAt seen per step: {starts}")
        assert set(starts) == {0, 1}, starts
        assert all(len(seen) == 1 for seen in starts.values()), f"a step was started again: {starts}"
        assert mlflow_alias(kube, model) == v2
        wait_for(
            f"ModelVersion {model}-{v2} Promoted",
            lambda: model_version_phase(kube, namespace, f"{model}-{v2}") == "Promoted",
            timeout=60,
        )
        events = reasons(events_about(kube, namespace, "Deployment", "iris"))
        assert events.count("CanaryStarted") == 1 and events.count("CanaryCompleted") == 1, events
        assert events.count("CanaryStep") <= 1, events
        assert op.running() and httpx.get(op.healthz, timeout=5).status_code == 200
        history = [h["version"] for h in rec.snapshots[-1].status["history"]]
        assert history == [v1, v2], history


@pytest.mark.timeout(480)
def test_canary_whose_pods_never_become_ready_aborts_at_the_progress_deadline(
    crds_installed: Kube, namespace: str, tmp_path: Path
) -> None:
    kube, model = crds_installed, f"nready-{namespace}"
    manifest = serving_deployment(model, [{"weight": 50, "pause": "5s"}, {"weight": 100}], progress_deadline="30s")
    with operator_for(kube, namespace, tmp_path / "operator.log") as op:
        rec = StatusRecorder(kube, namespace, op)
        v1 = serve_first_version(kube, namespace, model, manifest, rec)
        broken = register_unloadable(kube, model)
        kube.apply(model_version_manifest(model, broken), namespace)
        started = rec.wait("the canary of the unloadable version", canary_of(broken), timeout=60)
        ready_canaries: set[str] = set()

        def aborted_and_never_ready(s: Status) -> bool:
            ready_canaries.update(p.name for p in ready_pods(kube, namespace, track="canary") if p.version == broken)
            return aborted(broken)(s)

        final = rec.wait("the canary to be aborted", aborted_and_never_ready, timeout=150)
        abort_seconds = ts(final["rollbacks"][-1]["at"]) - ts(started["stepStartedAt"])
        print(f"\ncanary start -> abort (CanaryNotReady, progressDeadline 30s): {abort_seconds:.0f}s")
        print(f"rollback: {final['rollbacks'][-1]['message']}")
        assert final["rollbacks"][-1]["reason"] == "CanaryNotReady", final["rollbacks"]
        assert 30 <= abort_seconds <= 60, abort_seconds  # detection waits for a reconcile; slower beside other workers
        assert not ready_canaries, f"a canary pod of the unloadable version became Ready: {ready_canaries}"
        assert_rolled_back_to_stable(kube, namespace, model, v1, broken, "CanaryNotReady", final)


@pytest.mark.timeout(480)
def test_canary_without_traffic_aborts_with_no_analysis_data(
    crds_installed: Kube, namespace: str, tmp_path: Path
) -> None:
    kube, model = crds_installed, f"nodata-{namespace}"
    manifest = serving_deployment(
        model,
        [{"weight": 50, "pause": "5s"}, {"weight": 100}],
        metrics=[ERROR_RATE],
        interval="5s",
        # Beside other test workers on 2 cores a canary pod can take over 30 s to become Ready,
        # which is the other reason this deadline aborts for (CanaryNotReady).
        progress_deadline="90s",
    )
    with operator_for(kube, namespace, tmp_path / "operator.log") as op:
        rec = StatusRecorder(kube, namespace, op)
        v1 = serve_first_version(kube, namespace, model, manifest, rec)
        v2 = register_second_version(kube, namespace, model)  # a good model, but nobody sends it a request
        started = rec.wait("the canary of version 2", canary_of(v2), timeout=60)
        final = rec.wait("the canary to be aborted", aborted(v2), timeout=180)
        abort_seconds = ts(final["rollbacks"][-1]["at"]) - ts(started["stepStartedAt"])
        print(f"\ncanary start -> abort (NoAnalysisData, pause 5s + progressDeadline 90s): {abort_seconds:.0f}s")
        print(f"rollback: {final['rollbacks'][-1]['message']}")
        assert final["rollbacks"][-1]["reason"] == "NoAnalysisData", final["rollbacks"]
        assert 95 <= abort_seconds <= 180, abort_seconds
        judged = [r for s in rec.snapshots for r in s.status.get("analysis") or [] if r.get("passed") is not None]
        assert not judged, f"an analysis judged a metric without traffic: {judged}"
        assert_rolled_back_to_stable(kube, namespace, model, v1, v2, "NoAnalysisData", final)
        assert mlflow_registered_versions(kube, model) == [v1, v2]
