"""Deployment rollout planning: first rollout, canary steps, analysis, rollback and promotion, on plain data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mlops_operator.planning.rollout import Observed, analysis_due, plan_deployment
from mlops_operator.planning.serving import ServerSettings, split_replicas

T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
SETTINGS = ServerSettings(image="mlops-operator/server:test", tracking_uri="http://mlflow:5000")
STEPS = [{"weight": 10, "pause": "20s"}, {"weight": 50, "pause": "20s"}, {"weight": 100}]


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def deployment(status: dict | None = None, **model: object) -> dict:
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
                        "metrics": [{"name": "error-rate", "builtin": "errorRate", "max": 0.01}],
                    },
                }
            },
        },
        "status": status or {},
    }


def children(plan) -> dict:
    return {c["metadata"]["name"]: c for c in plan.applies}


def test_replica_split_gives_a_running_canary_at_least_one_pod() -> None:
    assert split_replicas(4, 10) == (3, 1)
    assert split_replicas(4, 50) == (2, 2)
    assert split_replicas(4, 100) == (0, 4)
    assert split_replicas(4, None) == (4, 0)


def test_first_rollout_serves_the_alias_holder_with_a_service_over_both_tracks() -> None:
    plan = plan_deployment(deployment(), Observed(holder=1), T0, SETTINGS)
    assert plan.status["stableVersion"] == 1 and plan.status["phase"] == "Progressing"
    assert plan.status["history"] == [{"version": 1, "from": stamp(T0)}]
    objs = children(plan)
    stable, canary, svc = objs["iris-stable"], objs["iris-canary"], objs["iris"]
    assert stable["spec"]["replicas"] == 4 and canary["spec"]["replicas"] == 0
    args = stable["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--model-uri=models:/iris-classifier/1" in args
    assert stable["spec"]["template"]["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    pod = stable["spec"]["template"]["spec"]
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False
    assert svc["spec"]["selector"] == {"mlops.dev/deployment": "iris"}
    assert not plan.alias_moves  # the holder already holds it


def test_nothing_to_serve_says_so() -> None:
    plan = plan_deployment(deployment(), Observed(holder=None), T0, SETTINGS)
    assert plan.status.get("stableVersion") is None and "none holds alias 'production'" in plan.status["message"]


def steady(**extra: object) -> dict:
    return {"stableVersion": 1, "history": [{"version": 1, "from": stamp(T0)}], **extra}


def test_an_approved_newer_version_starts_a_canary_at_the_first_step() -> None:
    plan = plan_deployment(
        deployment(steady()), Observed(holder=1, approved={2: "iris-classifier-2"}, stable_ready=4), T0, SETTINGS
    )
    status = plan.status
    assert (status["canaryVersion"], status["step"], status["canaryWeight"]) == (2, 0, 10)
    objs = children(plan)
    assert (objs["iris-stable"]["spec"]["replicas"], objs["iris-canary"]["spec"]["replicas"]) == (3, 1)
    assert (
        "--model-uri=models:/iris-classifier/2"
        in objs["iris-canary"]["spec"]["template"]["spec"]["containers"][0]["args"]
    )
    assert status["phase"] == "Progressing" and plan.requeue_after is not None and plan.requeue_after <= 5


def canary_status(step: int, started: datetime, **extra: object) -> dict:
    return steady(
        canaryVersion=2,
        step=step,
        canaryWeight=STEPS[step]["weight"],
        stepStartedAt=stamp(started),
        analysisFailures=0,
        **extra,
    )


def test_step_advances_only_after_its_pause_with_the_canary_ready() -> None:
    obs = Observed(holder=1, approved={2: "iris-classifier-2"}, stable_ready=3, canary_ready=1)
    passed = canary_status(0, T0, stepAnalysisPassed=True)
    early = plan_deployment(deployment(passed), obs, T0 + timedelta(seconds=10), SETTINGS)
    assert early.status["step"] == 0
    later = plan_deployment(deployment(passed), obs, T0 + timedelta(seconds=21), SETTINGS)
    assert (later.status["step"], later.status["canaryWeight"]) == (1, 50)
    assert later.status["stepAnalysisPassed"] is False  # the next step needs its own passing analysis
    not_ready = Observed(holder=1, approved={2: "iris-classifier-2"}, stable_ready=3, canary_ready=0)
    assert plan_deployment(deployment(passed), not_ready, T0 + timedelta(seconds=30), SETTINGS).status["step"] == 0


def test_a_step_waits_past_its_pause_until_an_analysis_judged_every_metric_and_all_passed() -> None:
    no_data = [{"name": "error-rate", "message": "error-rate: no data yet"}]
    obs = Observed(holder=1, approved={2: "iris-classifier-2"}, stable_ready=3, canary_ready=1, analysis=no_data)
    waiting = plan_deployment(deployment(canary_status(0, T0)), obs, T0 + timedelta(seconds=60), SETTINGS)
    assert waiting.status["step"] == 0 and not waiting.status.get("stepAnalysisPassed")
    assert "waiting for a passing analysis" in waiting.status["message"]
    ok = [{"name": "error-rate", "value": 0.0, "threshold": 0.01, "passed": True, "message": "ok"}]
    judged = Observed(holder=1, approved={2: "iris-classifier-2"}, stable_ready=3, canary_ready=1, analysis=ok)
    moved = plan_deployment(deployment(waiting.status), judged, T0 + timedelta(seconds=65), SETTINGS)
    assert (moved.status["step"], moved.status["stepAnalysisPassed"]) == (1, False)
    # A pass seen during the pause counts once the pause is over.
    early = plan_deployment(deployment(canary_status(0, T0)), judged, T0 + timedelta(seconds=5), SETTINGS)
    assert (early.status["step"], early.status["stepAnalysisPassed"]) == (0, True)
    quiet = Observed(holder=1, approved={2: "iris-classifier-2"}, stable_ready=3, canary_ready=1)
    assert plan_deployment(deployment(early.status), quiet, T0 + timedelta(seconds=21), SETTINGS).status["step"] == 1


def test_last_step_makes_the_canary_stable_and_moves_the_alias() -> None:
    obs = Observed(holder=1, approved={2: "iris-classifier-2"}, stable_ready=0, canary_ready=4)
    plan = plan_deployment(
        deployment(canary_status(2, T0, stepAnalysisPassed=True)), obs, T0 + timedelta(seconds=1), SETTINGS
    )
    status = plan.status
    assert status["stableVersion"] == 2 and status.get("canaryVersion") is None
    assert plan.alias_moves == [("iris-classifier", "production", 2)]
    assert plan.wake == [("ModelVersion", "ns", "iris-classifier-2")]
    assert status["history"][-2]["to"] == stamp(T0 + timedelta(seconds=1)) and status["history"][-1]["version"] == 2


def test_failed_analysis_aborts_after_failure_limit_and_marks_the_version() -> None:
    failing = [
        {"name": "error-rate", "value": 0.5, "threshold": 0.01, "passed": False, "message": "error-rate 0.5 > max 0.01"}
    ]
    obs = Observed(holder=1, approved={2: "iris-classifier-2"}, stable_ready=3, canary_ready=1, analysis=failing)
    first = plan_deployment(deployment(canary_status(0, T0)), obs, T0 + timedelta(seconds=10), SETTINGS)
    assert first.status["canaryVersion"] == 2 and first.status["analysisFailures"] == 1
    second = plan_deployment(deployment(first.status), obs, T0 + timedelta(seconds=20), SETTINGS)
    status = second.status
    assert status.get("canaryVersion") is None and status["rolledBackVersion"] == 2 and status["stableVersion"] == 1
    assert status["phase"] == "RolledBack" and "error-rate 0.5 > max 0.01" in status["message"]
    rolled = next(c for c in status["conditions"] if c["type"] == "RolledBack")
    assert rolled["status"] == "True"
    objs = children(second)
    assert (objs["iris-stable"]["spec"]["replicas"], objs["iris-canary"]["spec"]["replicas"]) == (4, 0)
    assert not second.alias_moves
    (kind, namespace, name, patch) = second.related_status[0]
    assert (kind, namespace, name, patch["phase"]) == ("ModelVersion", "ns", "iris-classifier-2", "RolledBack")
    # The rolled-back version is not tried again.
    again = plan_deployment(
        deployment(status), Observed(holder=1, approved={}, stable_ready=4), T0 + timedelta(seconds=30), SETTINGS
    )
    assert again.status.get("canaryVersion") is None


def test_no_data_is_not_a_failure_and_analysis_runs_each_interval() -> None:
    obs = Observed(
        holder=1,
        approved={2: "x"},
        stable_ready=3,
        canary_ready=1,
        analysis=[{"name": "error-rate", "message": "no data"}],
    )
    plan = plan_deployment(deployment(canary_status(0, T0)), obs, T0 + timedelta(seconds=10), SETTINGS)
    assert plan.status["analysisFailures"] == 0
    assert not analysis_due(deployment(plan.status), T0 + timedelta(seconds=15))
    assert analysis_due(deployment(plan.status), T0 + timedelta(seconds=20))


def test_a_pinned_deployment_rolls_out_an_edited_version_and_never_moves_by_itself() -> None:
    pinned = deployment(steady(), registeredModel="iris-classifier", version=1)
    plan = plan_deployment(pinned, Observed(approved={5: "iris-classifier-5"}, stable_ready=4), T0, SETTINGS)
    assert plan.status.get("canaryVersion") is None and not plan.alias_moves and plan.requeue_after is None
    edited = deployment(steady(), registeredModel="iris-classifier", version=3)
    assert plan_deployment(edited, Observed(stable_ready=4), T0, SETTINGS).status["canaryVersion"] == 3


def test_healthy_when_stable_is_fully_ready() -> None:
    plan = plan_deployment(deployment(steady()), Observed(holder=1, stable_ready=4), T0, SETTINGS)
    assert plan.status["phase"] == "Healthy" and plan.status["readyReplicas"] == 4
    assert next(c for c in plan.status["conditions"] if c["type"] == "Ready")["status"] == "True"
