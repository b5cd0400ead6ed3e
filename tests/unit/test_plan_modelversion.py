"""ModelVersion planning: gates, approval modes, alias moves and supersession, on plain data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mlops_operator.contract import TAG_OWNER_NAMESPACE
from mlops_operator.planning.modelversion import ModelVersionObserved, judge_gates, plan_modelversion
from mlops_operator.planning.ownership import ModelOwnership


def run_mv(body, registered, metrics, holder, holder_metrics, rollouts, now, rolled_back_by=None, mlflow_error=None):  # type: ignore[no-untyped-def]
    """One ModelVersion pass with what the controller would have gathered."""
    observed = ModelVersionObserved(registered, metrics, holder, holder_metrics, rollouts, rolled_back_by, mlflow_error)
    return plan_modelversion(body, observed, now)


NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
REGISTERED = {"name": "iris-classifier", "version": "2", "run_id": "r2"}
GATES = [{"metric": "accuracy", "min": 0.9}, {"metric": "f1_macro", "minImprovement": 0.0}]


def mv(status: dict | None = None, mode: str = "auto", promote: bool = False, generation: int = 1) -> dict:
    return {
        "metadata": {"namespace": "ns", "name": "iris-classifier-2", "uid": "u", "generation": generation},
        "spec": {
            "registeredModel": "iris-classifier",
            "version": 2,
            "promotion": {"alias": "production", "mode": mode, "gates": GATES},
            "promote": promote,
        },
        "status": status or {},
    }


def ready(status: dict) -> dict:
    return next(c for c in status["conditions"] if c["type"] == "Ready")


def test_gates_check_floors_and_improvement_in_the_right_direction() -> None:
    results = judge_gates(GATES, {"accuracy": 0.95, "f1_macro": 0.94}, {"accuracy": 0.9, "f1_macro": 0.95})
    assert [r["passed"] for r in results] == [True, False]
    assert results[1]["threshold"] == 0.95 and "improves" in results[1]["message"]
    rmse = judge_gates([{"metric": "rmse", "minImprovement": 1.0}], {"rmse": 50.0}, {"rmse": 52.0})
    assert rmse[0]["passed"] and rmse[0]["threshold"] == 51.0
    missing = judge_gates([{"metric": "auc", "min": 0.5}], {}, None)
    assert not missing[0]["passed"] and "not logged" in missing[0]["message"]
    assert judge_gates(GATES, {"accuracy": 0.95, "f1_macro": 0.1}, None)[1]["passed"]  # nothing to improve on


def test_passing_version_without_a_rollout_records_the_alias_move_then_is_promoted_when_mlflow_shows_it() -> None:
    plan = run_mv(mv(), REGISTERED, {"accuracy": 0.96, "f1_macro": 0.96}, 1, {"f1_macro": 0.9}, [], NOW)
    assert plan.alias_moves == [("iris-classifier", "production", 2)]  # made after this status is written
    assert plan.status["phase"] == "Approved" and plan.status["aliasMove"]["version"] == 2
    assert ready(plan.status)["reason"] == "Promoting"
    assert {e.reason for e in plan.events} == {"Approved"}
    # Killed before the move: the next pass makes it again from the recorded intent.
    retry = run_mv(mv(plan.status), REGISTERED, {"accuracy": 0.96}, 1, {"f1_macro": 0.9}, [], NOW)
    assert retry.alias_moves == [("iris-classifier", "production", 2)] and not retry.events
    done = run_mv(mv(plan.status), REGISTERED, {"accuracy": 0.96, "f1_macro": 0.96}, 2, None, [], NOW)
    assert done.status["phase"] == "Promoted" and done.status["promotedAt"] == "2026-11-23T12:00:00Z"
    assert done.status["aliasMove"] is None and not done.alias_moves
    assert ready(done.status)["status"] == "True" and {e.reason for e in done.events} == {"Promoted"}


def test_worse_version_is_rejected_with_value_and_threshold() -> None:
    plan = run_mv(mv(), REGISTERED, {"accuracy": 0.93, "f1_macro": 0.90}, 1, {"f1_macro": 0.95}, [], NOW)
    assert plan.status["phase"] == "Rejected" and not plan.alias_moves
    assert "f1_macro 0.9000" in plan.status["message"] and "0.9500" in plan.status["message"]
    failed = [r for r in plan.status["gateResults"] if not r["passed"]]
    assert failed == [
        {"metric": "f1_macro", "passed": False, "value": 0.9, "threshold": 0.95, "message": failed[0]["message"]}
    ]
    assert ready(plan.status)["reason"] == "GateFailed"


def test_manual_mode_waits_for_spec_promote() -> None:
    metrics = {"accuracy": 0.96, "f1_macro": 0.96}
    plan = run_mv(mv(mode="manual"), REGISTERED, metrics, None, None, [], NOW)
    assert plan.status["phase"] == "Evaluating" and not plan.alias_moves
    assert ready(plan.status)["reason"] == "AwaitingApproval"
    approved = mv(plan.status, mode="manual", promote=True, generation=2)
    plan = run_mv(approved, REGISTERED, metrics, None, None, [], NOW)
    assert plan.status["phase"] == "Approved" and plan.alias_moves and plan.status["aliasMove"]["version"] == 2


def test_a_deployment_rolling_out_the_alias_decides_instead() -> None:
    plan = run_mv(mv(), REGISTERED, {"accuracy": 0.96, "f1_macro": 0.96}, 1, {"f1_macro": 0.9}, ["iris"], NOW)
    assert plan.status["phase"] == "Approved" and not plan.alias_moves
    assert "deployments.mlops.dev/iris" in plan.status["message"]


def test_promoted_version_is_superseded_when_the_alias_moves_on() -> None:
    promoted = mv({"phase": "Promoted", "observedGeneration": 1, "gateResults": [], "promotedAt": "t"})
    assert run_mv(promoted, REGISTERED, {}, 2, None, [], NOW).status["phase"] == "Promoted"
    plan = run_mv(promoted, REGISTERED, {}, 3, None, [], NOW)
    assert plan.status["phase"] == "Superseded" and plan.status["supersededBy"] == "3"
    assert plan.events[0].reason == "Superseded"


def test_restart_after_the_alias_moved_just_records_promotion() -> None:
    approved = mv({"phase": "Approved", "observedGeneration": 1, "gateResults": []})
    plan = run_mv(approved, REGISTERED, {"accuracy": 0.96}, 2, None, [], NOW)
    assert plan.status["phase"] == "Promoted" and not plan.alias_moves and not plan.events


def test_unknown_version_is_reported_with_its_generation_and_backs_off() -> None:
    plan = run_mv(mv(generation=4), None, {}, None, None, [], NOW)
    assert plan.status["phase"] == "Registered" and plan.requeue_after == 15.0
    assert ready(plan.status)["reason"] == "VersionNotFound"
    assert plan.status["observedGeneration"] == 4  # kubectl wait and kstatus can tell it was seen
    later = run_mv(mv(plan.status, generation=4), None, {}, None, None, [], NOW + timedelta(minutes=20))
    assert later.requeue_after == 300.0  # settles and backs off instead of churning


def test_a_rollback_recorded_by_a_deployment_marks_the_version() -> None:
    approved = mv({"phase": "Approved", "observedGeneration": 1, "gateResults": []})
    plan = run_mv(
        approved, REGISTERED, {}, 1, None, ["iris"], NOW, rolled_back_by=("iris", "error-rate 0.5 > max 0.01")
    )
    assert plan.status["phase"] == "RolledBack" and "error-rate 0.5" in plan.status["message"]
    assert "deployments.mlops.dev/iris" in plan.status["message"] and ready(plan.status)["reason"] == "RolledBack"
    assert [e.reason for e in plan.events] == ["RolledBack"] and not plan.alias_moves


def test_mlflow_down_decides_nothing_and_says_degraded() -> None:
    approved = mv({"phase": "Approved", "observedGeneration": 1, "gateResults": []})
    plan = run_mv(approved, None, {}, None, None, [], NOW, mlflow_error="MLflow at http://m is unreachable")
    assert plan.status["phase"] == "Approved" and not plan.alias_moves and not plan.events
    degraded = next(c for c in plan.status["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "MlflowUnavailable") and plan.requeue_after


def owned_by(owner: str) -> ModelOwnership:
    return ModelOwnership.of("iris-classifier", {"tags": [{"key": TAG_OWNER_NAMESPACE, "value": owner}]})


def test_a_version_of_another_namespaces_model_is_refused_and_moves_nothing() -> None:
    metrics = {"accuracy": 0.99, "f1_macro": 0.99}
    observed = ModelVersionObserved(REGISTERED, metrics, 1, {"f1_macro": 0.9}, ownership=owned_by("team-a"))
    plan = plan_modelversion(mv(), observed, NOW)
    assert plan.alias_moves == [] and plan.status["phase"] == "Refused" and "gateResults" not in plan.status
    assert ready(plan.status)["reason"] == "ModelOwnedElsewhere" and "team-a" in plan.status["message"]
    assert [e.reason for e in plan.events] == ["ModelOwnedElsewhere"] and plan.requeue_after == 15
    again = plan_modelversion(mv(plan.status), observed, NOW + timedelta(minutes=4))
    assert again.events == [] and again.requeue_after == 120  # re-checked with a back-off, announced once
    # Adopted by (or given to) this namespace: judged and promoted as usual.
    mine = ModelVersionObserved(REGISTERED, metrics, 1, {"f1_macro": 0.9}, ownership=owned_by("ns"))
    assert plan_modelversion(mv(again.status), mine, NOW).alias_moves == [("iris-classifier", "production", 2)]


def managed(*entries: tuple[str, str, str, bool]) -> list[dict]:
    """managedFields entries: (manager, operation, time, whether it owns spec.promote)."""
    out = []
    for manager, operation, time, owns_promote in entries:
        spec = {"f:promote": {}} if owns_promote else {"f:version": {}}
        out.append({"manager": manager, "operation": operation, "time": time, "fieldsV1": {"f:spec": spec}})
    return out


def test_a_manual_approval_records_who_set_promote_and_when_in_status_and_on_the_version() -> None:
    metrics = {"accuracy": 0.96, "f1_macro": 0.96}
    waiting = run_mv(mv(mode="manual"), REGISTERED, metrics, None, None, [], NOW).status
    approved = mv(waiting, mode="manual", promote=True, generation=2)
    approved["metadata"]["managedFields"] = managed(
        ("kubectl-client-side-apply", "Update", "2026-11-23T11:00:00Z", False),
        ("argocd-controller", "Apply", "2026-11-23T11:40:00Z", True),
        ("kubectl-patch", "Update", "2026-11-23T11:55:00Z", True),
    )
    plan = run_mv(approved, REGISTERED, metrics, None, None, [], NOW)
    assert plan.status["approval"] == {"by": "kubectl-patch", "at": "2026-11-23T11:55:00Z", "via": "Update"}
    (event,) = [e for e in plan.events if e.reason == "Approved"]
    assert "approved by kubectl-patch (Update) at 2026-11-23T11:55:00Z" in event.message
    tags = {"mlops.dev/approved-by": "kubectl-patch", "mlops.dev/approved-at": "2026-11-23T11:55:00Z"}
    tags["mlops.dev/approved-via"] = "Update"
    assert plan.version_tags == [("iris-classifier", 2, tags)] and plan.alias_moves, "tags go with the alias move"

    # The registry shows the tags: not set again. A later edit by another manager does not rewrite the record.
    tagged = {**REGISTERED, "tags": [{"key": k, "value": v} for k, v in tags.items()]}
    again = mv(plan.status, mode="manual", promote=True, generation=2)
    again["metadata"]["managedFields"] = managed(("kubectl-edit", "Update", "2026-11-23T11:59:00Z", True))
    later = run_mv(again, tagged, metrics, None, None, [], NOW)
    assert later.version_tags == [] and later.status["approval"]["by"] == "kubectl-patch"


def test_an_approval_without_managed_fields_is_recorded_as_unknown_and_auto_mode_records_none() -> None:
    metrics = {"accuracy": 0.96, "f1_macro": 0.96}
    plan = run_mv(mv(mode="manual", promote=True), REGISTERED, metrics, None, None, [], NOW)
    assert plan.status["approval"] == {"by": "unknown", "at": "2026-11-23T12:00:00Z", "via": "unknown"}
    auto = run_mv(mv(), REGISTERED, metrics, None, None, [], NOW)
    assert "approval" not in auto.status and auto.version_tags == []
