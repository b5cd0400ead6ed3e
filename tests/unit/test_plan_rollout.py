"""Deployment planning: first rollout, canary steps, verdicts, outside failures, deadlines, rollback and the alias."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from mlops_operator.planning.analysis import MetricReading
from mlops_operator.planning.deployment import plan_deployment, reads_due
from mlops_operator.planning.observed import Tracks
from mlops_operator.planning.plan import Meta
from mlops_operator.planning.rollout import analysis_due
from mlops_operator.planning.serving import split_replicas

from .builders import condition, observe

T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
STEPS = [{"weight": 10, "pause": "20s"}, {"weight": 50, "pause": "20s"}, {"weight": 100}]
APPROVED = {2: "iris-classifier-2"}


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def deployment(status: dict | None = None, canary: dict | None = None, **model: object) -> dict:
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "Deployment",
        "metadata": {"namespace": "ns", "name": "iris", "uid": "d-uid", "generation": 1},
        "spec": {
            "model": model or {"registeredModel": "iris-classifier", "alias": "production"},
            "replicas": 4,
            "strategy": {
                "canary": {
                    "steps": STEPS,
                    "analysis": {
                        "interval": "10s",
                        "failureLimit": 2,
                        "consecutiveErrorLimit": 2,
                        "metrics": [{"name": "error-rate", "builtin": "errorRate", "max": 0.01}],
                    },
                    **(canary or {}),
                }
            },
        },
        "status": status or {},
    }


def children(plan: Any) -> dict:
    """The Services and apps/v1 Deployments a plan applies, by name (a track's PDB and HPA share its name)."""
    return {c["metadata"]["name"]: c for c in plan.applies if c["kind"] in ("Service", "Deployment")}


def scaling_children(plan: Any) -> dict:
    """The PodDisruptionBudgets and HPA a plan applies, by (kind, name)."""
    return {(c["kind"], c["metadata"]["name"]): c for c in plan.applies if c["kind"] not in ("Service", "Deployment")}


def steady(**extra: object) -> dict:
    return {"stableVersion": 1, "history": [{"version": 1, "from": stamp(T0)}], **extra}


def canary_status(step: int, started: datetime, **extra: object) -> dict:
    weight = STEPS[step]["weight"]
    return steady(
        canaryVersion=2, step=step, canaryWeight=weight, stepStartedAt=stamp(started), analysisFailures=0, **extra
    )


def error_rate(value: float | None = None, error: str | None = None) -> list[MetricReading]:
    return [MetricReading("error-rate", value=value, error=error, invalid_query=bool(error and "invalid" in error))]


def events(plan: Any) -> list[str]:
    return [e.reason for e in plan.events]


def test_replica_split_gives_a_running_canary_at_least_one_pod() -> None:
    assert split_replicas(4, 10) == (3, 1)
    assert split_replicas(4, 50) == (2, 2)
    assert split_replicas(4, 100) == (0, 4)
    assert split_replicas(4, None) == (4, 0)


def test_first_rollout_serves_the_alias_holder_with_a_service_over_both_tracks() -> None:
    plan = plan_deployment(observe(deployment(), holder=1), T0)
    assert plan.status["stableVersion"] == 1 and plan.status["phase"] == "Progressing"
    assert plan.status["history"] == [{"version": 1, "from": stamp(T0)}]
    objs = children(plan)
    stable, canary, svc = objs["iris-stable"], objs["iris-canary"], objs["iris"]
    assert stable["spec"]["replicas"] == 4 and canary["spec"]["replicas"] == 0
    args = stable["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--model-uri=models:/iris-classifier/1" in args and "--workers=1" in args  # the API model's default
    assert stable["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    pod = stable["spec"]["template"]["spec"]
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False
    assert svc["spec"]["selector"] == {"mlops.dev/deployment": "iris"}
    assert stable["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
    assert not plan.alias_moves and plan.status["aliasMove"] is None  # the holder already holds it
    assert condition(plan.status, "Degraded")["status"] == "False"


def test_unchanged_children_are_not_applied_again() -> None:
    first = plan_deployment(observe(deployment(), holder=1), T0)
    objs, budgets = children(first), scaling_children(first)
    observed_budgets = (budgets["PodDisruptionBudget", "iris-stable"], budgets["PodDisruptionBudget", "iris-canary"])
    body = deployment(first.status)
    tracks = {"stable": objs["iris-stable"], "canary": objs["iris-canary"], "budgets": observed_budgets}
    again = plan_deployment(observe(body, holder=1, **tracks), T0)
    names = {c["metadata"]["name"] for c in again.applies}
    assert names == {"iris"}  # the Service was not observed; both tracks and their budgets are as desired


def test_nothing_to_serve_says_so() -> None:
    plan = plan_deployment(observe(deployment(), holder=None), T0)
    assert plan.status["stableVersion"] is None and "none holds alias 'production'" in plan.status["message"]


def test_an_approved_newer_version_starts_a_canary_at_the_first_step() -> None:
    plan = plan_deployment(observe(deployment(steady()), holder=1, approved=APPROVED, stable_ready=4), T0)
    status = plan.status
    assert (status["canaryVersion"], status["step"], status["canaryWeight"]) == (2, 0, 10)
    objs = children(plan)
    assert (objs["iris-stable"]["spec"]["replicas"], objs["iris-canary"]["spec"]["replicas"]) == (3, 1)
    args = objs["iris-canary"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--model-uri=models:/iris-classifier/2" in args
    assert status["phase"] == "Progressing" and plan.requeue_after is not None and plan.requeue_after <= 5
    assert events(plan) == ["CanaryStarted"]


def test_a_canary_whose_candidate_is_no_longer_approved_is_cancelled_saying_why() -> None:
    running = deployment(canary_status(0, T0))
    plan = plan_deployment(observe(running, holder=1, approved={}, stable_ready=3, canary_ready=1), T0)
    assert plan.status["canaryVersion"] is None and plan.status["stableVersion"] == 1
    cancelled = [e for e in plan.events if e.reason == "CanaryCancelled"]
    assert len(cancelled) == 1 and "no other version is Approved (approved: none)" in cancelled[0].message
    assert children(plan)["iris-canary"]["spec"]["replicas"] == 0
    # While the candidate stays Approved the canary goes on, and an MLflow outage (holder unknown) cancels nothing.
    for obs in (
        observe(running, holder=1, approved=APPROVED, stable_ready=3, canary_ready=1),
        observe(running, holder_error="MLflow down", approved={}, stable_ready=3, canary_ready=1),
    ):
        assert plan_deployment(obs, T0).status["canaryVersion"] == 2


def test_step_advances_only_after_its_pause_with_the_canary_ready() -> None:
    passed = deployment(canary_status(0, T0, stepAnalysisPassed=True, lastAnalysisAt=stamp(T0 + timedelta(seconds=5))))
    obs = observe(passed, holder=1, approved=APPROVED, stable_ready=3, canary_ready=1)
    early = plan_deployment(obs, T0 + timedelta(seconds=10))
    assert early.status["step"] == 0
    later = plan_deployment(obs, T0 + timedelta(seconds=21))
    assert (later.status["step"], later.status["canaryWeight"]) == (1, 50)
    assert later.status["stepAnalysisPassed"] is False  # the next step needs its own passing analysis
    not_ready = observe(passed, holder=1, approved=APPROVED, stable_ready=3, canary_ready=0)
    assert plan_deployment(not_ready, T0 + timedelta(seconds=30)).status["step"] == 0


def test_a_step_waits_past_its_pause_until_an_analysis_judged_every_metric_and_all_passed() -> None:
    body = deployment(canary_status(0, T0))
    no_data = observe(body, holder=1, approved=APPROVED, stable_ready=3, canary_ready=1, readings=error_rate())
    waiting = plan_deployment(no_data, T0 + timedelta(seconds=60))
    assert waiting.status["step"] == 0 and not waiting.status.get("stepAnalysisPassed")
    assert "waiting for a passing analysis" in waiting.status["message"]
    assert waiting.status["analysis"] == [{"name": "error-rate", "message": "error-rate: no data yet"}]
    judged = observe(
        deployment(waiting.status),
        holder=1,
        approved=APPROVED,
        stable_ready=3,
        canary_ready=1,
        readings=error_rate(0.0),
    )
    moved = plan_deployment(judged, T0 + timedelta(seconds=70))
    assert (moved.status["step"], moved.status["stepAnalysisPassed"]) == (1, False)
    # A pass seen during the pause counts once the pause is over.
    during = observe(body, holder=1, approved=APPROVED, stable_ready=3, canary_ready=1, readings=error_rate(0.0))
    early = plan_deployment(during, T0 + timedelta(seconds=10))
    assert (early.status["step"], early.status["stepAnalysisPassed"]) == (0, True)
    quiet = observe(deployment(early.status), holder=1, approved=APPROVED, stable_ready=3, canary_ready=1)
    assert plan_deployment(quiet, T0 + timedelta(seconds=21)).status["step"] == 1


def test_last_step_makes_the_canary_stable_and_records_the_alias_move_before_making_it() -> None:
    body = deployment(canary_status(2, T0, stepAnalysisPassed=True))
    plan = plan_deployment(
        observe(body, holder=1, approved=APPROVED, stable_ready=0, canary_ready=4), T0 + timedelta(seconds=1)
    )
    status = plan.status
    assert status["stableVersion"] == 2 and status["canaryVersion"] is None
    intent = status["aliasMove"]
    assert (intent["registeredModel"], intent["alias"], intent["version"]) == ("iris-classifier", "production", 2)
    assert plan.alias_moves == [("iris-classifier", "production", 2)]  # made after the status write
    assert plan.wake == [("ModelVersion", "ns", "iris-classifier-2")]
    assert status["history"][-2]["to"] == stamp(T0 + timedelta(seconds=1)) and status["history"][-1]["version"] == 2
    # A restart before MLflow shows the move: the recorded intent is carried out again, never lost.
    retry = plan_deployment(
        observe(deployment(status), holder=1, approved=APPROVED, canary_ready=4), T0 + timedelta(seconds=2)
    )
    assert retry.alias_moves == [("iris-classifier", "production", 2)] and retry.status["aliasMove"] is not None
    # MLflow shows it: done, cleared, announced once.
    done = plan_deployment(observe(deployment(status), holder=2, stable_ready=4), T0 + timedelta(seconds=3))
    assert not done.alias_moves and done.status["aliasMove"] is None and "AliasMoved" in events(done)


def test_mlflow_down_keeps_the_last_version_serving_and_says_degraded() -> None:
    body = deployment(steady(aliasMove={"registeredModel": "iris-classifier", "alias": "production", "version": 2}))
    plan = plan_deployment(
        observe(body, holder_error="MLflow at http://mlflow:5000 is unreachable", stable_ready=4), T0
    )
    degraded = condition(plan.status, "Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "MlflowUnavailable"
    assert (
        "version 1 keeps serving" in degraded["message"] and "moves to version 2 when it is back" in degraded["message"]
    )
    assert plan.status["stableVersion"] == 1 and children(plan)["iris-stable"]["spec"]["replicas"] == 4
    assert plan.alias_moves == [("iris-classifier", "production", 2)]  # tried again; the runtime backs off on failure
    assert "MlflowUnavailable" in events(plan) and plan.requeue_after == 5.0
    later = plan_deployment(
        observe(deployment(plan.status), holder_error="down", stable_ready=4), T0 + timedelta(minutes=4)
    )
    assert later.requeue_after == 60.0 and "MlflowUnavailable" not in events(later)  # backs off; warns once
    back = plan_deployment(observe(deployment(later.status), holder=2, stable_ready=4), T0 + timedelta(minutes=5))
    assert condition(back.status, "Degraded")["status"] == "False" and "Recovered" in events(back)


def test_failed_analysis_aborts_after_failure_limit_and_records_the_rollback() -> None:
    obs = observe(
        deployment(canary_status(0, T0)),
        holder=1,
        approved=APPROVED,
        stable_ready=3,
        canary_ready=1,
        readings=error_rate(0.5),
    )
    first = plan_deployment(obs, T0 + timedelta(seconds=10))
    assert first.status["canaryVersion"] == 2 and first.status["analysisFailures"] == 1
    again = observe(
        deployment(first.status), holder=1, approved=APPROVED, stable_ready=3, canary_ready=1, readings=error_rate(0.5)
    )
    second = plan_deployment(again, T0 + timedelta(seconds=20))
    status = second.status
    assert status["canaryVersion"] is None and status["rolledBackVersion"] == 2 and status["stableVersion"] == 1
    assert status["phase"] == "RolledBack" and "error-rate 0.5 > max 0.01" in status["message"]
    assert (status["rollbacks"][-1]["version"], status["rollbacks"][-1]["reason"]) == (2, "AnalysisFailed")
    rolled = condition(status, "RolledBack")
    assert rolled["status"] == "True" and rolled["reason"] == "AnalysisFailed"
    objs = children(second)
    assert (objs["iris-stable"]["spec"]["replicas"], objs["iris-canary"]["spec"]["replicas"]) == (4, 0)
    assert not second.alias_moves and status["aliasMove"] is None
    assert second.wake == [("ModelVersion", "ns", "iris-classifier-2")]  # it reads the rollback from this status
    # The rolled-back version is not tried again, even while it is still Approved.
    later = plan_deployment(
        observe(deployment(status), holder=1, approved=APPROVED, stable_ready=4), T0 + timedelta(seconds=30)
    )
    assert later.status["canaryVersion"] is None


def test_erred_queries_are_results_and_abort_at_the_consecutive_error_limit() -> None:
    down = error_rate(error="Prometheus at http://prometheus:9090 is unreachable (ConnectError)")
    obs = observe(
        deployment(canary_status(0, T0)), holder=1, approved=APPROVED, stable_ready=3, canary_ready=1, readings=down
    )
    first = plan_deployment(obs, T0 + timedelta(seconds=10))
    result = first.status["analysis"][0]
    assert result["error"].startswith("Prometheus at") and "passed" not in result
    assert first.status["analysisErrors"] == 1 and first.status["analysisFailures"] == 0
    degraded = condition(first.status, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "PrometheusUnavailable")
    assert "error-rate" in degraded["message"]
    # An answer in between resets the run of errors.
    ok = observe(
        deployment(first.status), holder=1, approved=APPROVED, stable_ready=3, canary_ready=1, readings=error_rate(0.0)
    )
    reset = plan_deployment(ok, T0 + timedelta(seconds=20))
    assert reset.status["analysisErrors"] == 0 and reset.status["canaryVersion"] == 2
    again = plan_deployment(
        observe(deployment(first.status), holder=1, approved=APPROVED, stable_ready=3, canary_ready=1, readings=down),
        T0 + timedelta(seconds=20),
    )
    assert again.status["canaryVersion"] is None and again.status["rollbacks"][-1]["reason"] == "AnalysisErrors"
    assert condition(again.status, "RolledBack")["reason"] == "AnalysisErrors"
    assert children(again)["iris-stable"]["spec"]["replicas"] == 4  # the stable version is untouched


def test_an_invalid_query_names_the_metric_and_prometheus_error() -> None:
    bad = error_rate(error="invalid query: 1:14: parse error: unclosed left parenthesis")
    obs = observe(
        deployment(canary_status(0, T0)), holder=1, approved=APPROVED, stable_ready=3, canary_ready=1, readings=bad
    )
    plan = plan_deployment(obs, T0 + timedelta(seconds=10))
    degraded = condition(plan.status, "Degraded")
    assert degraded["reason"] == "InvalidQuery" and "'error-rate'" in degraded["message"]
    assert "unclosed left parenthesis" in degraded["message"] and events(plan) == ["InvalidQuery"]


def test_a_prometheus_url_the_chart_does_not_allow_is_never_asked_and_says_why() -> None:
    refused = "spec.monitoring.prometheusUrl http://10.0.0.7 is not an allowed Prometheus (chart values ...)"
    obs = observe(deployment(steady()), holder=1, approved=APPROVED, stable_ready=4)
    plan = plan_deployment(replace(obs, prometheus_url=None, prometheus_refused=refused), T0)
    assert plan.status["canaryVersion"] is None
    degraded = condition(plan.status, "Degraded")
    assert degraded["status"] == "True" and refused in degraded["message"]
    assert condition(plan.status, "Progressing")["reason"] == "AnalysisNotConfigured"
    assert refused in condition(plan.status, "Progressing")["message"]


def test_no_prometheus_holds_the_candidate_and_says_so_at_once() -> None:
    obs = observe(deployment(steady()), holder=1, approved=APPROVED, stable_ready=4, prometheus_url=None)
    plan = plan_deployment(obs, T0)
    assert plan.status["canaryVersion"] is None and not events(plan).count("CanaryStarted")
    degraded = condition(plan.status, "Degraded")
    assert degraded["reason"] == "AnalysisNotConfigured" and "prometheusUrl" in degraded["message"]
    assert condition(plan.status, "Progressing")["reason"] == "AnalysisNotConfigured"
    # Mid-canary (the URL removed): every analysis errs, and the error limit aborts.
    running = observe(
        deployment(canary_status(0, T0)),
        holder=1,
        approved=APPROVED,
        stable_ready=3,
        canary_ready=1,
        prometheus_url=None,
    )
    first = plan_deployment(running, T0 + timedelta(seconds=10))
    assert "no Prometheus configured" in first.status["analysis"][0]["error"]


def test_a_canary_that_never_gets_ready_aborts_at_its_progress_deadline() -> None:
    body = deployment(canary_status(0, T0), canary={"progressDeadline": "2m"})
    waiting = plan_deployment(
        observe(body, holder=1, approved=APPROVED, stable_ready=3, canary_ready=0), T0 + timedelta(minutes=2)
    )
    assert waiting.status["canaryVersion"] == 2
    late = plan_deployment(
        observe(body, holder=1, approved=APPROVED, stable_ready=3, canary_ready=0), T0 + timedelta(minutes=2, seconds=1)
    )
    assert late.status["canaryVersion"] is None and late.status["rollbacks"][-1]["reason"] == "CanaryNotReady"
    assert "0/1 canary pods Ready 2m after step 1" in late.status["message"]


def test_a_canary_without_analysis_data_aborts_after_its_pause_and_deadline() -> None:
    body = deployment(
        canary_status(0, T0, lastAnalysisAt=stamp(T0 + timedelta(seconds=135))), canary={"progressDeadline": "2m"}
    )
    quiet = observe(body, holder=1, approved=APPROVED, stable_ready=3, canary_ready=1)
    assert plan_deployment(quiet, T0 + timedelta(seconds=140)).status["canaryVersion"] == 2  # pause 20 s + 2 m
    no_data = observe(
        deployment(
            canary_status(
                0,
                T0,
                analysis=[{"name": "error-rate", "message": "error-rate: no data yet"}],
                lastAnalysisAt=stamp(T0 + timedelta(seconds=135)),
            ),
            canary={"progressDeadline": "2m"},
        ),
        holder=1,
        approved=APPROVED,
        stable_ready=3,
        canary_ready=1,
    )
    plan = plan_deployment(no_data, T0 + timedelta(seconds=141))
    assert plan.status["canaryVersion"] is None and plan.status["rollbacks"][-1]["reason"] == "NoAnalysisData"
    assert "no data yet" in plan.status["message"] and events(plan) == ["RolledBack"]


def test_no_data_is_not_a_failure_and_analysis_runs_each_interval() -> None:
    obs = observe(
        deployment(canary_status(0, T0)),
        holder=1,
        approved={2: "x"},
        stable_ready=3,
        canary_ready=1,
        readings=error_rate(),
    )
    plan = plan_deployment(obs, T0 + timedelta(seconds=10))
    assert plan.status["analysisFailures"] == 0 and plan.status["analysisErrors"] == 0
    spec, status = obs.spec, observe(deployment(plan.status)).status
    assert not analysis_due(spec, status, T0 + timedelta(seconds=15))
    assert analysis_due(spec, status, T0 + timedelta(seconds=20))


def test_reads_are_chosen_from_spec_status_and_store_alone() -> None:
    body = deployment(canary_status(0, T0))
    obs = observe(body)
    meta = Meta.of(body)
    ready = Tracks(
        canary={
            "metadata": {"generation": 1},
            "status": {"observedGeneration": 1, "readyReplicas": 1, "updatedReplicas": 1},
        }
    )
    due = reads_due(meta, obs.spec, obs.status, ready, "http://p", None, False, T0 + timedelta(seconds=10))
    assert due.holder == ("iris-classifier", "production") and due.analysis is not None
    assert 'track="canary"' in due.analysis[0].promql and "[30s]" in due.analysis[0].promql  # two scrapes at least
    assert (
        reads_due(meta, obs.spec, obs.status, Tracks(), "http://p", None, False, T0 + timedelta(seconds=10)).analysis
        is None
    )
    assert reads_due(meta, obs.spec, obs.status, ready, None, None, False, T0 + timedelta(seconds=10)).analysis is None
    assert (
        reads_due(meta, obs.spec, obs.status, ready, "http://p", None, False, T0 + timedelta(seconds=5)).analysis
        is None
    )


def test_a_pinned_deployment_rolls_out_an_edited_version_and_never_moves_by_itself() -> None:
    pinned = deployment(steady(), registeredModel="iris-classifier", version=1)
    plan = plan_deployment(observe(pinned, approved={5: "iris-classifier-5"}, stable_ready=4), T0)
    assert plan.status["canaryVersion"] is None and not plan.alias_moves and plan.requeue_after is None
    edited = deployment(steady(), registeredModel="iris-classifier", version=3)
    assert plan_deployment(observe(edited, stable_ready=4), T0).status["canaryVersion"] == 3


def test_healthy_when_stable_is_fully_ready() -> None:
    plan = plan_deployment(observe(deployment(steady()), holder=1, stable_ready=4), T0)
    assert plan.status["phase"] == "Healthy" and plan.status["readyReplicas"] == 4
    assert condition(plan.status, "Ready")["status"] == "True"
    assert plan.status["observedGeneration"] == 1


def test_the_first_version_served_from_an_approval_takes_the_alias_once_ready() -> None:
    body = deployment(steady())
    scaling = plan_deployment(observe(body, holder=None, approved={1: "iris-classifier-1"}, stable_ready=2), T0)
    assert scaling.status["aliasMove"] is None and not scaling.alias_moves
    ready = plan_deployment(observe(body, holder=None, approved={1: "iris-classifier-1"}, stable_ready=4), T0)
    assert ready.status["aliasMove"]["version"] == 1 and ready.alias_moves == [("iris-classifier", "production", 1)]


def test_drift_monitoring_without_prometheus_says_so_instead_of_never_checking() -> None:
    body = deployment(steady())
    body["spec"]["monitoring"] = {"drift": {"interval": "1m"}}
    plan = plan_deployment(observe(body, holder=1, stable_ready=4, prometheus_url=None), T0)
    assert plan.status["drift"]["message"].startswith("drift check failed: no Prometheus configured")
    assert condition(plan.status, "Degraded")["reason"] == "DriftCheckFailed" and "DriftCheckFailed" in events(plan)
