"""Drift-triggered retraining planning: one decided run per cooldown, recorded before it is created."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from mlops_operator.api.deployment import DeploymentSpec, DeploymentStatus
from mlops_operator.api.retraining import RetrainingStatus
from mlops_operator.contract import ANNOTATION_DATA_NOT_BEFORE
from mlops_operator.planning.conditions import status_changed, status_patch
from mlops_operator.planning.observed import RetrainingObserved
from mlops_operator.planning.plan import Meta, Plan
from mlops_operator.planning.retraining import (
    in_cooldown,
    in_flight,
    plan_retraining,
    resolve_template,
    retraining_of,
    run_name,
    training_run,
    wants_new_run,
)

from .builders import observe

T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
RUN = "iris-retrain-20261123-120000"
SOURCE = {
    "datasetRef": {"name": "iris"},
    "estimator": "sklearn.ensemble.RandomForestClassifier",
    "params": {"n_estimators": 50},
    "registeredModel": "iris-classifier",
    "promotion": {"alias": "production", "gates": [{"metric": "accuracy", "min": 0.9}]},
}


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def deployment(status: dict | None = None, retraining: dict | None = None, **model: object) -> dict:
    spec: dict = {
        "model": model or {"registeredModel": "iris-classifier", "alias": "production"},
        "replicas": 2,
        "monitoring": {"drift": {"method": "psi", "window": "15m"}},
        "retraining": {"enabled": True, "cooldown": "10m"} if retraining is None else retraining,
    }
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "Deployment",
        "metadata": {"namespace": "ns", "name": "iris", "uid": "d-uid", "generation": 1},
        "spec": spec,
        "status": status if status is not None else drifting(),
    }


def drifting(condition: str = "True", drift_version: int = 3, **extra: object) -> dict:
    """A Deployment status whose serving version 3 drifts (DriftDetected `condition`)."""
    return {
        "stableVersion": 3,
        "drift": {
            "version": drift_version,
            "method": "psi",
            "threshold": 0.1,
            "window": "15m",
            "score": 0.31,
            "feature": "petal_length",
            "consecutive": 2,
            "checkedAt": stamp(T0),
        },
        "conditions": [
            {
                "type": "DriftDetected",
                "status": condition,
                "reason": "DriftDetected",
                "message": "petal_length: psi 0.310 > 0.1",
                "lastTransitionTime": stamp(T0),
                "observedGeneration": 1,
            }
        ],
        **extra,
    }


def decided(at: datetime = T0, name: str = RUN, **retraining: object) -> dict:
    """A status that recorded a retraining decision at `at`."""
    cause = {
        "run": name,
        "decidedAt": stamp(at),
        "feature": "petal_length",
        "method": "psi",
        "score": 0.31,
        "window": "15m",
        "version": 3,
        "phase": "Pending",
        "modelVersion": None,
        "message": f"TrainingRun {name} created because of drift in petal_length",
        **retraining,
    }
    return drifting(retraining=cause, lastRetrainingRun=name, lastRetrainingAt=stamp(at))


def trainingrun(phase: str | None, model_version: str | None = None, message: str | None = None) -> dict:
    """A TrainingRun as the store summarises it."""
    return {
        "metadata": {"name": RUN, "namespace": "ns", "annotations": {}},
        "spec": {"datasetRef": {"name": "iris"}},
        "status": {"phase": phase, "modelVersion": model_version, "message": message, "jobName": "j"},
    }


def modelversion(phase: str, message: str | None = None) -> dict:
    return {
        "metadata": {"name": "iris-classifier-4", "namespace": "ns", "annotations": {}},
        "spec": {"registeredModel": "iris-classifier", "version": 4},
        "status": {"phase": phase, "message": message},
    }


def plan_for(body: dict, obs: RetrainingObserved, now: datetime, source_read: bool = True) -> Plan:
    """One retraining pass as the Deployment planner runs it (the source run read unless told otherwise)."""
    observed = observe(body, retraining=replace(obs, source_read=source_read))
    status, plan = observed.status.model_copy(deep=True), Plan(status={})
    plan_retraining(plan, status, observed, now)
    plan.status = status_patch(status)
    return plan


def spec_of(spec: dict[str, Any]) -> DeploymentSpec:
    return DeploymentSpec.model_validate(spec)


def cooling(status: dict, cooldown: str, now: datetime) -> bool:
    return in_cooldown(DeploymentStatus.model_validate(status), cooldown, now)


def wants(status: dict, spec: dict, now: datetime) -> bool:
    return wants_new_run(spec_of(spec), DeploymentStatus.model_validate(status), now)


def resolve(spec: dict, source: dict | None, error: str | None) -> tuple[dict | None, str | None]:
    return resolve_template(spec_of(spec), RetrainingObserved(source_spec=source, source_error=error, source_read=True))


def events(plan: Plan) -> list[tuple[str, str]]:
    return [(e.reason, e.type) for e in plan.events]


def test_retraining_is_off_unless_enabled_and_its_defaults_live_in_the_api_model() -> None:
    model = {"model": {"registeredModel": "m", "alias": "a"}}
    assert retraining_of(spec_of(model)) is None
    assert retraining_of(spec_of({**model, "retraining": {"cooldown": "1h"}})) is None
    assert retraining_of(spec_of({**model, "retraining": {"enabled": False}})) is None
    enabled = retraining_of(spec_of({**model, "retraining": {"enabled": True}}))
    assert enabled is not None and (enabled.cooldown, enabled.training_run_template) == ("6h", None)
    template = {"estimator": "sklearn.tree.DecisionTreeClassifier"}
    explicit = {"enabled": True, "cooldown": "30m", "trainingRunTemplate": template}
    settings = retraining_of(spec_of({**model, "retraining": explicit}))
    assert settings is not None and (settings.cooldown, settings.training_run_template) == ("30m", template)


def test_run_names_follow_the_decision_time() -> None:
    assert run_name("iris", T0) == RUN
    assert run_name("iris", T0 + timedelta(seconds=1)) == "iris-retrain-20261123-120001"
    long = run_name("a-very-long-deployment-name-" * 4, T0)
    assert len(long) <= 63 and long.endswith("-retrain-20261123-120000")


def test_cooldown_runs_from_the_last_decision() -> None:
    status = {"lastRetrainingAt": stamp(T0)}
    assert not cooling({}, "10m", T0)
    assert cooling(status, "10m", T0 + timedelta(minutes=9, seconds=59))
    assert not cooling(status, "10m", T0 + timedelta(minutes=10))
    assert cooling(status, "1h", T0 + timedelta(minutes=30))


def test_a_new_run_is_wanted_for_drift_on_the_serving_version_outside_the_cooldown() -> None:
    spec = deployment()["spec"]
    assert wants(drifting(), spec, T0)
    assert not wants(drifting(condition="False"), spec, T0)
    assert not wants(drifting(condition="Unknown"), spec, T0)
    assert not wants(drifting(drift_version=2), spec, T0)  # measured on another version
    assert not wants(drifting(lastRetrainingAt=stamp(T0)), spec, T0 + timedelta(minutes=5))
    assert wants(drifting(lastRetrainingAt=stamp(T0)), spec, T0 + timedelta(minutes=10))
    assert not wants(drifting(), deployment(retraining={"enabled": False})["spec"], T0)
    assert not wants(drifting(), {**spec, "retraining": None}, T0)


def test_the_template_defaults_to_the_serving_run_spec() -> None:
    source = {k: v for k, v in SOURCE.items() if k not in ("registeredModel", "promotion")}
    template, error = resolve(deployment()["spec"], source, None)
    assert error is None and template is not None
    assert template["registeredModel"] == "iris-classifier" and template["promotion"] == {"alias": "production"}
    assert template["estimator"] == SOURCE["estimator"] and template["params"] == {"n_estimators": 50}
    assert "registeredModel" not in source  # the source spec is copied, not changed
    staging = deployment(registeredModel="iris-classifier", alias="staging")["spec"]
    template, _ = resolve(staging, SOURCE, None)
    assert template is not None and template["promotion"]["alias"] == "production"  # an explicit alias is kept
    assert template["promotion"]["gates"] == SOURCE["promotion"]["gates"]
    pinned = deployment(registeredModel="iris-classifier", version=3)["spec"]
    template, error = resolve(pinned, source, None)
    # A pinned Deployment never serves a retrained version: retraining for it would be wasted work.
    assert template is None and error is not None and "pinned" in error


def test_a_promotion_without_an_alias_gets_the_deployment_alias() -> None:
    source = {**SOURCE, "promotion": {"gates": [{"metric": "accuracy", "min": 0.9}]}}
    staging = deployment(registeredModel="iris-classifier", alias="staging")["spec"]
    template, error = resolve(staging, source, None)
    assert error is None and template is not None
    assert template["promotion"] == {"alias": "staging", "gates": [{"metric": "accuracy", "min": 0.9}]}


def test_an_explicit_template_wins_over_the_source_run() -> None:
    own = {"datasetRef": {"name": "iris-fresh"}, "estimator": "sklearn.tree.DecisionTreeClassifier"}
    spec = deployment(retraining={"enabled": True, "trainingRunTemplate": own})["spec"]
    template, error = resolve(spec, SOURCE, None)
    assert error is None and template is not None
    assert (template["datasetRef"], template["estimator"]) == ({"name": "iris-fresh"}, own["estimator"])
    assert template["registeredModel"] == "iris-classifier" and "registeredModel" not in own


def test_without_a_template_or_source_run_there_is_no_run() -> None:
    spec = deployment()["spec"]
    template, error = resolve(spec, None, "version 3 of iris-classifier was not produced by a TrainingRun")
    assert template is None and error == "version 3 of iris-classifier was not produced by a TrainingRun"
    template, error = resolve(spec, None, None)
    assert template is None and error is not None and "no trainingRunTemplate" in error


def test_an_invalid_template_names_the_field() -> None:
    bad_estimator = {"datasetRef": {"name": "iris"}, "estimator": "os.system"}
    spec = deployment(retraining={"enabled": True, "trainingRunTemplate": bad_estimator})["spec"]
    template, error = resolve(spec, None, None)
    assert template is None and error is not None
    assert error.startswith("spec.retraining.trainingRunTemplate is not a valid TrainingRun spec: estimator:")
    assert "pattern" in error and "datasetRef" not in error
    no_dataset = {"estimator": "sklearn.tree.DecisionTreeClassifier"}
    spec = deployment(retraining={"enabled": True, "trainingRunTemplate": no_dataset})["spec"]
    template, error = resolve(spec, None, None)
    assert template is None and error is not None and "datasetRef: Field required" in error
    unknown = {**SOURCE, "epochs": 3}
    spec = deployment(retraining={"enabled": True, "trainingRunTemplate": unknown})["spec"]
    assert "epochs" in (resolve(spec, None, None)[1] or "")


def test_the_training_run_carries_its_cause() -> None:
    cause = {"decidedAt": stamp(T0), "feature": "petal length (cm)", "method": "psi", "score": 0.31}
    cause.update(window="15m", version=3)
    run = training_run(Meta.of(deployment()), RUN, SOURCE, RetrainingStatus.model_validate(cause))
    assert (run["apiVersion"], run["kind"]) == ("mlops.dev/v1alpha1", "TrainingRun")
    assert (run["metadata"]["name"], run["metadata"]["namespace"], run["spec"]) == (RUN, "ns", SOURCE)
    assert run["metadata"]["labels"] == {
        "mlops.dev/triggered-by": "drift",
        "mlops.dev/deployment": "iris",
        "mlops.dev/drift-feature": "petal-length--cm",  # cut to a valid label value
    }
    assert run["metadata"]["annotations"] == {
        "mlops.dev/retraining-causes": "drift",  # a decision recorded before causes were had only drift
        "mlops.dev/drift-feature": "petal length (cm)",
        "mlops.dev/drift-method": "psi",
        "mlops.dev/drift-score": "0.31",
        "mlops.dev/drift-window": "15m",
        "mlops.dev/drift-deployment": "iris",
        "mlops.dev/drift-version": "3",
        ANNOTATION_DATA_NOT_BEFORE: stamp(T0),
        "mlops.dev/controller-uid": "d-uid",  # no ownerReference (the run outlives it): the creator's mark
    }
    assert ANNOTATION_DATA_NOT_BEFORE == "mlops.dev/data-not-before"
    assert "ownerReferences" not in run["metadata"]


def test_a_run_is_in_flight_until_its_version_is_settled() -> None:
    assert not in_flight(RetrainingObserved())
    assert in_flight(RetrainingObserved(last_run=trainingrun(None)))
    assert in_flight(RetrainingObserved(last_run=trainingrun("Pending")))
    assert in_flight(RetrainingObserved(last_run=trainingrun("Running")))
    assert not in_flight(RetrainingObserved(last_run=trainingrun("Failed")))
    succeeded = trainingrun("Succeeded", "iris-classifier-4")
    assert in_flight(RetrainingObserved(last_run=succeeded))  # its ModelVersion is not seen yet
    for phase in ("Registered", "Approved"):
        assert in_flight(RetrainingObserved(succeeded, modelversion(phase)))
    for phase in ("Promoted", "Rejected", "RolledBack", "Superseded"):
        assert not in_flight(RetrainingObserved(succeeded, modelversion(phase)))


def test_drift_decides_a_run_in_status_before_creating_it() -> None:
    plan = plan_for(deployment(), RetrainingObserved(source_spec=SOURCE), T0)
    status = plan.status
    assert plan.creates == [] and plan.applies == []  # the status write must come first
    (run,) = plan.creates_after_status
    assert run["metadata"]["name"] == RUN and run["kind"] == "TrainingRun"
    assert run["spec"] == SOURCE
    assert (status["lastRetrainingRun"], status["lastRetrainingAt"]) == (RUN, stamp(T0))
    retraining = status["retraining"]
    assert (retraining["run"], retraining["decidedAt"], retraining["phase"]) == (RUN, stamp(T0), "Pending")
    assert (retraining["feature"], retraining["method"], retraining["score"]) == ("petal_length", "psi", 0.31)
    assert (retraining["window"], retraining["version"]) == ("15m", 3)
    assert run["metadata"]["annotations"][ANNOTATION_DATA_NOT_BEFORE] == stamp(T0)
    assert run["metadata"]["annotations"]["mlops.dev/drift-version"] == "3"
    assert events(plan) == [("RetrainingTriggered", "Normal")]
    assert RUN in plan.events[0].message and "petal_length" in plan.events[0].message


def test_no_second_run_inside_the_cooldown_while_drift_persists() -> None:
    settled = RetrainingObserved(trainingrun("Succeeded", "iris-classifier-4"), modelversion("Promoted"), SOURCE)
    body = deployment(decided())
    inside = plan_for(body, settled, T0 + timedelta(minutes=9))
    assert inside.creates_after_status == [] and inside.creates == []
    assert inside.status["lastRetrainingRun"] == RUN and inside.status["lastRetrainingAt"] == stamp(T0)
    assert inside.status["retraining"]["message"] == "retrained iris-classifier-4 was promoted"
    assert "RetrainingTriggered" not in [e.reason for e in inside.events]
    after = plan_for(body, settled, T0 + timedelta(minutes=10))
    (run,) = after.creates_after_status
    assert run["metadata"]["name"] == "iris-retrain-20261123-121000"
    assert after.status["lastRetrainingAt"] == stamp(T0 + timedelta(minutes=10))


def test_no_run_while_the_last_one_is_in_flight() -> None:
    body = deployment(decided())
    later = T0 + timedelta(hours=1)  # long past the cooldown
    running = plan_for(body, RetrainingObserved(trainingrun("Running"), None, SOURCE), later)
    assert running.creates_after_status == [] and running.status["lastRetrainingRun"] == RUN
    assert running.status["retraining"]["phase"] == "Running"
    assert running.status["retraining"]["message"] == f"TrainingRun {RUN}: Running"
    approved = RetrainingObserved(trainingrun("Succeeded", "iris-classifier-4"), modelversion("Approved"), SOURCE)
    waiting = plan_for(body, approved, later)
    assert waiting.creates_after_status == [] and waiting.events == []
    retraining = waiting.status["retraining"]
    assert (retraining["modelVersion"], retraining["modelVersionPhase"]) == ("iris-classifier-4", "Approved")
    assert retraining["message"] == f"TrainingRun {RUN}: Succeeded, iris-classifier-4 Approved"


def test_a_decided_but_missing_run_is_created_again_by_name() -> None:
    body = deployment(decided())
    plan = plan_for(body, RetrainingObserved(last_run=None, source_spec=SOURCE), T0 + timedelta(minutes=3))
    (run,) = plan.creates_after_status
    assert run["metadata"]["name"] == RUN and run["spec"] == SOURCE
    assert run["metadata"]["annotations"][ANNOTATION_DATA_NOT_BEFORE] == stamp(T0)  # the decision's time, not now
    assert run["metadata"]["annotations"]["mlops.dev/drift-score"] == "0.31"
    assert plan.events == [] and plan.creates == []
    assert plan.status["lastRetrainingRun"] == RUN and plan.status["lastRetrainingAt"] == stamp(T0)
    assert not status_changed({"retraining": body["status"]["retraining"]}, {"retraining": plan.status["retraining"]})


def test_a_rejected_retrained_version_is_reported_once() -> None:
    rejected = RetrainingObserved(
        trainingrun("Succeeded", "iris-classifier-4"), modelversion("Rejected", "accuracy 0.81 < min 0.9"), SOURCE
    )
    first = plan_for(deployment(decided()), rejected, T0 + timedelta(minutes=5))
    retraining = first.status["retraining"]
    assert "rejected" in retraining["message"] and "accuracy 0.81 < min 0.9" in retraining["message"]
    assert retraining["message"].endswith("the serving version is unchanged")
    assert (retraining["phase"], retraining["modelVersionPhase"]) == ("Succeeded", "Rejected")
    assert events(first) == [("RetrainingRejected", "Warning")]
    assert first.creates_after_status == []
    second = plan_for(deployment(first.status), rejected, T0 + timedelta(minutes=6))
    assert second.events == [] and second.status["retraining"]["message"] == retraining["message"]


def test_a_rolled_back_retrained_version_counts_as_rejected() -> None:
    rolled_back = RetrainingObserved(trainingrun("Succeeded", "iris-classifier-4"), modelversion("RolledBack"), SOURCE)
    plan = plan_for(deployment(decided()), rolled_back, T0 + timedelta(minutes=5))
    assert events(plan) == [("RetrainingRejected", "Warning")]
    assert plan.status["retraining"]["message"].startswith("retrained iris-classifier-4 was rolledback")


def test_a_failed_run_is_reported_once() -> None:
    failed = RetrainingObserved(trainingrun("Failed", message="column 'species' not found"), None, SOURCE)
    first = plan_for(deployment(decided()), failed, T0 + timedelta(minutes=5))
    assert events(first) == [("RetrainingFailed", "Warning")]
    assert first.status["retraining"]["message"] == f"TrainingRun {RUN} failed: column 'species' not found"
    assert first.status["retraining"]["phase"] == "Failed" and first.creates_after_status == []
    second = plan_for(deployment(first.status), failed, T0 + timedelta(minutes=6))
    assert second.events == []


def test_an_impossible_template_warns_once_and_creates_nothing() -> None:
    why = "version 3 of iris-classifier was not produced by a TrainingRun in ns"
    obs = RetrainingObserved(source_error=why)
    first = plan_for(deployment(), obs, T0)
    assert first.creates_after_status == [] and first.creates == []
    assert events(first) == [("RetrainingImpossible", "Warning")]
    assert first.status["retraining"]["message"] == f"drift calls for retraining, but {why}"
    assert first.status["lastRetrainingRun"] is None and first.status["lastRetrainingAt"] is None
    second = plan_for(deployment(first.status), obs, T0 + timedelta(minutes=1))
    assert second.events == [] and second.creates_after_status == []
    invalid = deployment(retraining={"enabled": True, "trainingRunTemplate": {"estimator": "sklearn.svm.SVC"}})
    plan = plan_for(invalid, RetrainingObserved(), T0)
    assert events(plan) == [("RetrainingImpossible", "Warning")] and plan.creates_after_status == []
    assert "datasetRef" in plan.status["retraining"]["message"]


def test_drift_on_another_version_does_not_retrain() -> None:
    body = deployment(drifting(drift_version=2))
    plan = plan_for(body, RetrainingObserved(source_spec=SOURCE), T0)
    assert plan.creates_after_status == [] and plan.events == [] and plan.status["lastRetrainingRun"] is None
    unconfirmed = plan_for(deployment(drifting(condition="False")), RetrainingObserved(source_spec=SOURCE), T0)
    assert unconfirmed.creates_after_status == [] and unconfirmed.events == []


def test_disabled_retraining_does_nothing() -> None:
    for retraining in ({"enabled": False, "cooldown": "10m"}, {}):
        body = deployment(decided(), retraining=retraining)
        obs = RetrainingObserved(trainingrun("Failed", message="boom"), None, SOURCE)
        plan = plan_for(body, obs, T0 + timedelta(hours=1))
        assert not status_changed(body["status"], plan.status) and plan.events == [] and plan.creates_after_status == []


def test_drift_confirmed_before_the_serving_run_was_read_waits_one_pass_for_it() -> None:
    # The pass that confirms drift has not read the source run (reads are chosen before planning):
    # it decides nothing yet and looks again at once, when the read is made.
    plan = plan_for(deployment(), RetrainingObserved(), T0, source_read=False)
    assert plan.creates_after_status == [] and plan.events == [] and plan.requeue_after == 0.5
    assert plan.status["lastRetrainingRun"] is None


def degrading(version: int = 3, value: float = 0.81, **extra: object) -> dict:
    """A status whose serving version 3 is PerformanceDegraded (live accuracy below its bound)."""
    return {
        "stableVersion": 3,
        "performance": {"metric": "accuracy", "version": version, "value": value, "labels": 640, "window": "10m"},
        "conditions": [
            {
                "type": "PerformanceDegraded",
                "status": "True",
                "reason": "PerformanceDegraded",
                "message": f"accuracy {value} < min 0.9",
                "lastTransitionTime": stamp(T0),
                "observedGeneration": 1,
            }
        ],
        **extra,
    }


def with_performance(status: dict, retraining: dict | None = None) -> dict:
    body = deployment(status, retraining)
    body["spec"]["monitoring"]["performance"] = {"metric": "accuracy", "min": 0.9}
    return body


def test_degraded_live_performance_starts_one_run_that_names_its_cause_and_evidence() -> None:
    plan = plan_for(with_performance(degrading()), RetrainingObserved(source_spec=SOURCE), T0)
    (run,) = plan.creates_after_status
    status = plan.status["retraining"]
    assert status["causes"] == ["performance"] and status["run"] == run["metadata"]["name"]
    assert (status["metric"], status["value"], status["labels"], status["version"]) == ("accuracy", 0.81, 640, 3)
    assert status["message"].endswith("created because of degraded accuracy")
    assert run["metadata"]["labels"]["mlops.dev/triggered-by"] == "performance"
    notes = run["metadata"]["annotations"]
    assert notes["mlops.dev/retraining-causes"] == "performance"
    assert (notes["mlops.dev/performance-metric"], notes["mlops.dev/performance-value"]) == ("accuracy", "0.81")
    assert not [k for k in notes if k.startswith("mlops.dev/drift-")], "no drift evidence without drift"
    (event,) = [e for e in plan.events if e.reason == "RetrainingTriggered"]
    assert "accuracy 0.81 over 640 labels (version 3)" in event.message


def test_drift_and_degradation_together_make_exactly_one_run_naming_both() -> None:
    both = drifting()
    both["performance"] = degrading()["performance"]
    both["conditions"] += degrading()["conditions"]
    plan = plan_for(with_performance(both), RetrainingObserved(source_spec=SOURCE), T0)
    (run,) = plan.creates_after_status
    assert plan.status["retraining"]["causes"] == ["drift", "performance"]
    assert run["metadata"]["annotations"]["mlops.dev/retraining-causes"] == "drift,performance"
    assert run["metadata"]["annotations"]["mlops.dev/drift-feature"] == "petal_length"
    assert "drift in petal_length and degraded accuracy" in plan.status["retraining"]["message"]
    later = with_performance({**both, **plan.status})
    again = plan_for(
        later, RetrainingObserved(last_run=trainingrun("Running"), source_spec=SOURCE), T0 + timedelta(minutes=1)
    )
    assert not again.creates_after_status, "one decision per cooldown, whichever signal asks"


def test_a_trigger_can_be_switched_off_and_another_versions_degradation_starts_nothing() -> None:
    off = {"enabled": True, "cooldown": "10m", "triggers": {"performanceDegraded": False}}
    assert not plan_for(
        with_performance(degrading(), off), RetrainingObserved(source_spec=SOURCE), T0
    ).creates_after_status
    old = degrading(version=2)
    assert not plan_for(with_performance(old), RetrainingObserved(source_spec=SOURCE), T0).creates_after_status
    assert spec_of(deployment()["spec"]).retraining.triggers.drift is True  # type: ignore[union-attr]
