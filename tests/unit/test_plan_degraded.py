"""Outside reads that fail for Datasets and TrainingRuns (MLflow, the API server): data the planners decide on.

A finished Job whose result cannot be read records nothing: the phase stays, status is still written with
Degraded naming the failure, the next look backs off with the condition's age, and once the read answers
the result is recorded and Degraded turns False.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from mlops_operator import contract
from mlops_operator.integrations.mlflow import MlflowError, RunInfo
from mlops_operator.planning.dataset import plan_dataset
from mlops_operator.planning.degraded import mlflow_failure
from mlops_operator.planning.jobs import JobOutcome
from mlops_operator.planning.plan import rfc3339
from mlops_operator.planning.trainingrun import plan_trainingrun

from .builders import condition, observe_dataset, observe_trainingrun

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
DOWN = MlflowError("MLflow at http://mlflow:5000 is unreachable: ConnectError('[Errno 111] Connection refused')")
CHECK = "iris-check-g1-0"
TRAINING_JOB = "iris-train-01234567"


def degraded_since(since: datetime, reason: str = "MlflowUnavailable") -> dict:
    return {
        "type": "Degraded",
        "status": "True",
        "reason": reason,
        "message": "MLflow at http://mlflow:5000 is unreachable",
        "lastTransitionTime": rfc3339(since),
        "observedGeneration": 1,
    }


def dataset(status: dict | None = None) -> dict:
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "Dataset",
        "metadata": {"namespace": "ns", "name": "iris", "uid": "d-uid", "generation": 1, "resourceVersion": "7"},
        "spec": {"source": {"uri": "file:///d/iris.csv", "format": "csv"}, "target": "species"},
        "status": status or {},
    }


def validating(*conditions: dict) -> dict:
    """A Dataset whose first check's Job was created and is being waited for."""
    ready = {"type": "Ready", "status": "Unknown", "reason": "Validating", "message": f"Job {CHECK} is validating"}
    ready.update(lastTransitionTime=rfc3339(NOW - timedelta(minutes=5)), observedGeneration=1)
    return dataset(
        {"observedGeneration": 1, "phase": "Validating", "jobName": CHECK, "conditions": [ready, *conditions]}
    )


def valid_run() -> RunInfo:
    tags = {
        contract.TAG_OUTCOME: contract.OUTCOME_VALID,
        contract.TAG_DATASET_VERSION: "sha256:abc",
        contract.TAG_PROFILE_URI: "runs:/r1/reference_profile.json",
        contract.TAG_VIOLATIONS: "[]",
    }
    return RunInfo(run_id="r1", status="FINISHED", metrics={"rows": 150}, tags=tags)


JOB = {"metadata": {"name": CHECK, "namespace": "ns"}}


def test_mlflow_down_when_the_validation_job_finished_keeps_the_phase_and_says_degraded() -> None:
    observed = observe_dataset(validating(), CHECK, JOB, JobOutcome("Succeeded"), run_error=DOWN)
    plan = plan_dataset(observed, NOW)
    status = plan.status
    assert status["phase"] == "Validating" and status["checkedJob"] is None and status["version"] is None
    assert status["message"].startswith(f"Job {CHECK} finished; its result cannot be read yet: MLflow at")
    degraded = condition(status, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "MlflowUnavailable")
    assert "Connection refused" in degraded["message"] and degraded["lastTransitionTime"] == rfc3339(NOW)
    assert condition(status, "Ready")["status"] == "Unknown"
    assert plan.requeue_after == 15.0 and not plan.events and not plan.creates_after_status


@pytest.mark.parametrize(
    ("outage", "wait"),
    [
        pytest.param(timedelta(seconds=0), 15.0, id="just-started"),
        pytest.param(timedelta(seconds=20), 15.0, id="short"),
        pytest.param(timedelta(minutes=1), 30.0, id="a-minute"),
        pytest.param(timedelta(minutes=4), 120.0, id="minutes"),
        pytest.param(timedelta(hours=1), 300.0, id="long-capped"),
    ],
)
def test_the_next_look_backs_off_with_the_age_of_the_degraded_condition(outage: timedelta, wait: float) -> None:
    since = NOW - outage
    dataset_plan = plan_dataset(
        observe_dataset(validating(degraded_since(since)), CHECK, JOB, JobOutcome("Succeeded"), run_error=DOWN), NOW
    )
    assert dataset_plan.requeue_after == wait
    assert condition(dataset_plan.status, "Degraded")["lastTransitionTime"] == rfc3339(since)  # the outage's start
    run_plan = plan_trainingrun(
        observe_trainingrun(running(degraded_since(since)), None, training_job(), finished(), run_error=DOWN), NOW
    )
    assert run_plan.requeue_after == wait


def test_mlflow_back_records_the_result_and_clears_degraded() -> None:
    body = validating(degraded_since(NOW - timedelta(minutes=3)))
    plan = plan_dataset(observe_dataset(body, CHECK, JOB, JobOutcome("Succeeded"), valid_run()), NOW)
    status = plan.status
    assert (status["phase"], status["version"], status["checkedJob"]) == ("Ready", "sha256:abc", CHECK)
    degraded = condition(status, "Degraded")
    assert (degraded["status"], degraded["reason"], degraded["lastTransitionTime"]) == (
        "False",
        "AsExpected",
        rfc3339(NOW),
    )
    assert condition(status, "Ready")["status"] == "True"
    assert [e.reason for e in plan.events] == ["NewVersion"] and plan.requeue_after is None


def test_a_dataset_no_read_failed_for_carries_no_degraded_condition() -> None:
    plan = plan_dataset(observe_dataset(validating(), CHECK, JOB, JobOutcome("Succeeded"), valid_run()), NOW)
    assert [c["type"] for c in plan.status["conditions"]] == ["Ready"]


def test_a_recorded_result_clears_a_degraded_condition_left_from_before() -> None:
    recorded = validating(degraded_since(NOW - timedelta(hours=2)))
    recorded["status"].update(checkedJob=CHECK, phase="Ready", version="sha256:abc", message="150 rows")
    plan = plan_dataset(observe_dataset(recorded, CHECK), NOW)
    assert condition(plan.status, "Degraded")["status"] == "False" and plan.requeue_after is None


def test_an_mlflow_error_answer_is_named_by_status_and_code_never_by_its_body() -> None:
    proxy = MlflowError("MLflow /runs/search: <html><body>502 Bad Gateway</body></html>", status=502)
    assert mlflow_failure(proxy) == "MLflow answered HTTP 502"
    internal = MlflowError("MLflow /runs/search: a long server-side message", status=500, code="INTERNAL_ERROR")
    assert mlflow_failure(internal) == "MLflow answered HTTP 500 INTERNAL_ERROR"
    plan = plan_dataset(observe_dataset(validating(), CHECK, JOB, JobOutcome("Succeeded"), run_error=proxy), NOW)
    assert condition(plan.status, "Degraded")["message"] == "MLflow answered HTTP 502"
    assert "<html>" not in plan.status["message"]


def test_a_failed_job_whose_pods_cannot_be_read_records_no_failure_yet() -> None:
    why = f"the pods of Job {CHECK} could not be read: 403 pods is forbidden"
    failed = JobOutcome("Failed", reason="BackoffLimitExceeded", message="the worker failed")
    plan = plan_dataset(observe_dataset(validating(), CHECK, JOB, failed, pods_error=why), NOW)
    assert plan.status["phase"] == "Validating" and plan.status["checkedJob"] is None
    degraded = condition(plan.status, "Degraded")
    assert (degraded["status"], degraded["reason"], degraded["message"]) == ("True", "ApiReadFailed", why)
    assert plan.requeue_after == 15.0 and not plan.events


def test_a_job_that_cannot_be_read_is_not_created_again() -> None:
    why = f"Job {CHECK} could not be read: 503 the server is currently unable to handle the request"
    plan = plan_dataset(observe_dataset(validating(), CHECK, job_error=why), NOW)
    assert not plan.creates_after_status and not plan.events and plan.status["phase"] == "Validating"
    assert condition(plan.status, "Degraded")["reason"] == "ApiReadFailed" and plan.requeue_after == 15.0


def trainingrun(status: dict | None = None) -> dict:
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "TrainingRun",
        "metadata": {"namespace": "ns", "name": "iris-train", "uid": "0123456789ab", "generation": 1},
        "spec": {
            "datasetRef": {"name": "iris"},
            "estimator": "sklearn.ensemble.RandomForestClassifier",
            "registeredModel": "iris-classifier",
        },
        "status": status or {},
    }


def running(*conditions: dict) -> dict:
    return trainingrun(
        {
            "observedGeneration": 1,
            "phase": "Running",
            "jobName": TRAINING_JOB,
            "datasetVersion": "sha256:abc",
            "message": f"Job {TRAINING_JOB} is running",
            "conditions": list(conditions),
        }
    )


def training_job() -> dict:
    annotations = {"mlops.dev/dataset-version": "sha256:abc"}
    return {"metadata": {"name": TRAINING_JOB, "namespace": "ns", "annotations": annotations}, "spec": {}}


def finished() -> JobOutcome:
    return JobOutcome("Succeeded", "2026-11-23T11:59:00Z", "2026-11-23T11:59:40Z")


def registered_run() -> RunInfo:
    tags = {contract.TAG_REGISTERED_MODEL: "iris-classifier", contract.TAG_REGISTERED_VERSION: "3"}
    return RunInfo(run_id="r1", status="FINISHED", metrics={"accuracy": 0.96}, tags=tags)


def test_trainingrun_with_mlflow_down_after_its_job_finished_waits_and_says_degraded() -> None:
    plan = plan_trainingrun(observe_trainingrun(running(), None, training_job(), finished(), run_error=DOWN), NOW)
    status = plan.status
    assert status["phase"] == "Running" and status["modelVersion"] is None and status["mlflowRunId"] is None
    assert "cannot be read yet: MLflow at http://mlflow:5000 is unreachable" in status["message"]
    degraded = condition(status, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "MlflowUnavailable")
    assert not plan.creates and not plan.events and not plan.patches and plan.requeue_after == 15.0


def test_trainingrun_records_its_result_when_mlflow_is_back_and_clears_degraded() -> None:
    body = running(degraded_since(NOW - timedelta(minutes=2)))
    plan = plan_trainingrun(observe_trainingrun(body, None, training_job(), finished(), registered_run()), NOW)
    status = plan.status
    assert (status["phase"], status["modelVersion"]) == ("Succeeded", "iris-classifier-3")
    assert [mv["metadata"]["name"] for mv in plan.creates] == ["iris-classifier-3"]
    degraded = condition(status, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("False", "AsExpected")
    assert plan.requeue_after is None


def test_a_finished_run_clears_a_degraded_condition_left_from_before_and_expires_its_job() -> None:
    done = running(degraded_since(NOW - timedelta(hours=3)))
    done["status"].update(phase="Succeeded", modelVersion="iris-classifier-3")
    plan = plan_trainingrun(observe_trainingrun(done, None, training_job()), NOW)
    assert condition(plan.status, "Degraded")["status"] == "False" and plan.requeue_after is None
    assert [patch for _, patch in plan.patches] == [{"spec": {"ttlSecondsAfterFinished": 3600}}]


def test_trainingrun_whose_dataset_cannot_be_read_creates_no_job_and_says_why() -> None:
    why = "Dataset iris could not be read: 503 the server is currently unable to handle the request"
    plan = plan_trainingrun(observe_trainingrun(trainingrun(), dataset_error=why), NOW)
    assert not plan.creates and plan.status["jobName"] is None
    degraded = condition(plan.status, "Degraded")
    assert (degraded["status"], degraded["reason"], degraded["message"]) == ("True", "ApiReadFailed", why)
    assert plan.requeue_after == 15.0


def test_trainingrun_whose_job_cannot_be_read_creates_no_second_job() -> None:
    ready = dataset({"phase": "Ready", "version": "sha256:new"})
    why = f"Job {TRAINING_JOB} could not be read: 500 etcdserver: request timed out"
    plan = plan_trainingrun(observe_trainingrun(running(), ready, job_error=why), NOW)
    assert not plan.creates and plan.status["datasetVersion"] == "sha256:abc"  # not re-pinned to the new version
    assert plan.status["phase"] == "Running" and condition(plan.status, "Degraded")["reason"] == "ApiReadFailed"
