"""Planners for Dataset, TrainingRun and job outcomes, on plain data."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from mlops_operator import contract
from mlops_operator.integrations.mlflow import MlflowError, RunInfo
from mlops_operator.planning.dataset import check_job_name, plan_dataset
from mlops_operator.planning.jobs import JobOutcome, job_outcome
from mlops_operator.planning.ownership import ModelOwnership
from mlops_operator.planning.plan import Meta, dns_name
from mlops_operator.planning.trainingrun import plan_trainingrun, training_job_name

from .builders import observe_dataset, observe_trainingrun, wanted

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def dataset(status: dict | None = None, generation: int = 1, refresh: str | None = None) -> dict:
    spec: dict = {"source": {"uri": "file:///d/iris.csv", "format": "csv"}, "target": "species"}
    if refresh:
        spec["refreshInterval"] = refresh
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "Dataset",
        "metadata": {
            "namespace": "ns",
            "name": "iris",
            "uid": "d-uid",
            "generation": generation,
            "resourceVersion": "1",
        },
        "spec": spec,
        "status": status or {},
    }


def run(tags: dict, metrics: dict | None = None, status: str = "FINISHED") -> RunInfo:
    return RunInfo(run_id="r1", status=status, metrics=metrics or {}, tags=tags)


def test_first_check_creates_one_job_after_recording_its_name() -> None:
    body = dataset()
    name = wanted(body, NOW)
    assert name == "iris-check-g1-0"
    plan = plan_dataset(observe_dataset(body, name), NOW)
    assert plan.status["phase"] == "Validating" and plan.status["jobName"] == name
    assert not plan.creates and [j["metadata"]["name"] for j in plan.creates_after_status] == [name]
    job = plan.creates_after_status[0]
    assert job["metadata"]["ownerReferences"][0]["uid"] == "d-uid"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["mlops-worker", "validate"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert json.loads(env[contract.ENV_OBJECT])["metadata"]["uid"] == "d-uid"
    assert env[contract.ENV_TRACKING_URI] == "http://mlflow:5000"
    assert job["spec"]["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"] == [2]
    pod = job["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["volumes"] == [{"name": "tmp", "emptyDir": {}}]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_valid_result_makes_the_dataset_ready() -> None:
    body = dataset({"jobName": "iris-check-g1-0", "observedGeneration": 1, "phase": "Validating"})
    tags = {
        contract.TAG_OUTCOME: contract.OUTCOME_VALID,
        contract.TAG_DATASET_VERSION: "sha256:abc",
        contract.TAG_PROFILE_URI: "runs:/r1/reference_profile.json",
        contract.TAG_VIOLATIONS: "[]",
    }
    job = {"metadata": {"name": "iris-check-g1-0"}}
    plan = plan_dataset(
        observe_dataset(body, "iris-check-g1-0", job, JobOutcome("Succeeded"), run(tags, {"rows": 150})), NOW
    )
    status = plan.status
    assert (status["phase"], status["version"], status["rows"]) == ("Ready", "sha256:abc", 150)
    assert status["checkedJob"] == "iris-check-g1-0" and status["profileUri"].startswith("runs:/")
    assert next(c for c in status["conditions"] if c["type"] == "Ready")["status"] == "True"
    assert [e.reason for e in plan.events] == ["NewVersion"]


def test_invalid_result_lists_violations() -> None:
    violations = [{"column": "species", "rule": "values", "message": "column 'species': 2 values not allowed"}]
    tags = {
        contract.TAG_OUTCOME: contract.OUTCOME_INVALID,
        contract.TAG_DATASET_VERSION: "sha256:abc",
        contract.TAG_VIOLATIONS: json.dumps(violations),
    }
    body = dataset({"jobName": "iris-check-g1-0", "observedGeneration": 1})
    plan = plan_dataset(
        observe_dataset(body, "iris-check-g1-0", {}, JobOutcome("Succeeded"), run(tags, {"violations": 1})), NOW
    )
    assert plan.status["phase"] == "Invalid" and plan.status["violations"] == violations
    assert "species" in plan.status["message"] and plan.events[0].type == "Warning"


def test_job_done_but_run_not_visible_waits_briefly() -> None:
    body = dataset({"jobName": "iris-check-g1-0", "observedGeneration": 1})
    plan = plan_dataset(observe_dataset(body, "iris-check-g1-0", {}, JobOutcome("Succeeded")), NOW)
    assert plan.requeue_after and plan.requeue_after < 10 and plan.status["checkedJob"] is None


def test_refresh_starts_a_new_check_and_keeps_the_dataset_ready() -> None:
    last = NOW - timedelta(hours=2)
    status = {
        "observedGeneration": 1,
        "phase": "Ready",
        "version": "sha256:abc",
        "jobName": "iris-check-g1-0",
        "checkedJob": "iris-check-g1-0",
        "lastChecked": last.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    body = dataset(status, refresh="1h")
    name = wanted(body, NOW)
    assert name == check_job_name(Meta.of(body), int(NOW.timestamp() // 3600))
    assert wanted(body, NOW + timedelta(minutes=5)) == name  # deterministic within the period
    plan = plan_dataset(observe_dataset(body, name), NOW)
    assert plan.status["phase"] == "Ready" and plan.creates_after_status
    not_due = dataset({**status, "lastChecked": NOW.strftime("%Y-%m-%dT%H:%M:%SZ")}, refresh="1h")
    assert wanted(not_due, NOW) == "iris-check-g1-0"
    assert plan_dataset(observe_dataset(not_due, "iris-check-g1-0"), NOW).requeue_after == 3600


def test_spec_change_starts_a_check_for_the_new_generation() -> None:
    status = {"observedGeneration": 1, "jobName": "iris-check-g1-0", "checkedJob": "iris-check-g1-0", "phase": "Ready"}
    assert wanted(dataset(status, generation=2), NOW) == "iris-check-g2-0"


def trainingrun(status: dict | None = None) -> dict:
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "TrainingRun",
        "metadata": {"namespace": "ns", "name": "iris-train", "uid": "0123456789ab", "generation": 1},
        "spec": {
            "datasetRef": {"name": "iris"},
            "estimator": "sklearn.ensemble.RandomForestClassifier",
            "registeredModel": "iris-classifier",
            "promotion": {"alias": "production", "gates": [{"metric": "accuracy", "min": 0.9}]},
            "resources": {"limits": {"memory": "1Gi"}},
            "backoffLimit": 2,
            "activeDeadlineSeconds": 600,
        },
        "status": status or {},
    }


def test_trainingrun_waits_for_a_ready_dataset_without_a_job() -> None:
    plan = plan_trainingrun(observe_trainingrun(trainingrun()), NOW)
    assert plan.status["phase"] == "Pending" and not plan.creates and "does not exist" in plan.status["message"]
    invalid = dataset({"phase": "Invalid", "message": "2 violation(s)"})
    plan = plan_trainingrun(observe_trainingrun(trainingrun(), invalid), NOW)
    assert not plan.creates and "Invalid" in plan.status["message"]
    ready = next(c for c in plan.status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "DatasetNotReady")


def test_trainingrun_pins_the_dataset_version_in_its_one_job() -> None:
    ready = dataset({"phase": "Ready", "version": "sha256:abc"})
    plan = plan_trainingrun(observe_trainingrun(trainingrun(), ready), NOW)
    (job,) = plan.creates
    assert job["metadata"]["name"] == training_job_name(Meta.of(trainingrun())) == "iris-train-01234567"
    assert job["metadata"]["annotations"]["mlops.dev/dataset-version"] == "sha256:abc"
    spec = job["spec"]
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"]) == (2, 600)
    container = spec["template"]["spec"]["containers"][0]
    assert container["resources"] == {"limits": {"memory": "1Gi"}}
    env = {e["name"]: e["value"] for e in container["env"]}
    assert json.loads(env[contract.ENV_DATASET])["status"]["version"] == "sha256:abc"
    assert plan.status["datasetVersion"] == "sha256:abc"


def test_succeeded_job_creates_the_model_version_then_records_metrics() -> None:
    job = {"metadata": {"name": "iris-train-01234567", "annotations": {"mlops.dev/dataset-version": "sha256:abc"}}}
    tags = {
        contract.TAG_OUTCOME: contract.OUTCOME_SUCCEEDED,
        contract.TAG_REGISTERED_MODEL: "iris-classifier",
        contract.TAG_REGISTERED_VERSION: "3",
    }
    result = run(tags, {"accuracy": 0.9667, "f1_macro": 0.966, "training_seconds": 2.0})
    outcome = JobOutcome("Succeeded", "2026-11-23T11:59:00Z", "2026-11-23T11:59:40Z")
    plan = plan_trainingrun(observe_trainingrun(trainingrun(), None, job, outcome, result), NOW)
    (mv,) = plan.creates
    assert mv["metadata"]["name"] == "iris-classifier-3" and mv["spec"]["version"] == 3
    assert mv["spec"]["source"] == {"trainingRunRef": "iris-train", "runId": "r1", "uri": "models:/iris-classifier/3"}
    assert mv["spec"]["promotion"]["gates"][0]["min"] == 0.9
    assert mv["metadata"]["labels"]["mlops.dev/training-run"] == "iris-train"
    assert "ownerReferences" not in mv["metadata"]  # versions outlive the run
    status = plan.status
    assert status["phase"] == "Succeeded" and status["metrics"] == {"accuracy": 0.9667, "f1_macro": 0.966}
    assert (status["mlflowRunId"], status["modelVersion"]) == ("r1", "iris-classifier-3")
    assert status["completionTime"] == "2026-11-23T11:59:40Z"
    # A terminal run is never planned again.
    assert plan_trainingrun(observe_trainingrun(trainingrun(status)), NOW).creates == []


def test_failed_job_says_why() -> None:
    job = {"metadata": {"name": "j"}}
    result = run({contract.TAG_OUTCOME: "failed", contract.TAG_ERROR: "column 'species' not found"}, status="FAILED")
    plan = plan_trainingrun(
        observe_trainingrun(trainingrun(), None, job, JobOutcome("Failed", reason="PodFailurePolicy"), result), NOW
    )
    assert plan.status["phase"] == "Failed" and plan.status["message"] == "column 'species' not found"
    succeeded = next(c for c in plan.status["conditions"] if c["type"] == "Succeeded")
    assert (succeeded["status"], succeeded["reason"]) == ("False", "TrainingFailed")


def failed_job(reason: str) -> dict:
    return {
        "spec": {
            "activeDeadlineSeconds": 60,
            "template": {"spec": {"containers": [{"resources": {"limits": {"memory": "1Gi"}}}]}},
        },
        "status": {"conditions": [{"type": "Failed", "status": "True", "reason": reason, "lastTransitionTime": "t"}]},
    }


def pod(terminated: dict) -> dict:
    return {"status": {"containerStatuses": [{"state": {"terminated": {"finishedAt": "t", **terminated}}}]}}


def test_job_outcomes_read_deadline_oom_and_log_tail() -> None:
    assert job_outcome({"status": {"active": 1, "startTime": "s"}}).state == "Running"
    assert job_outcome({"status": {"conditions": [{"type": "Complete", "status": "True"}]}}).state == "Succeeded"
    deadline = job_outcome(failed_job("DeadlineExceeded"))
    assert deadline.reason == "DeadlineExceeded" and "activeDeadlineSeconds=60" in deadline.message
    oom = job_outcome(failed_job("BackoffLimitExceeded"), [pod({"reason": "OOMKilled", "exitCode": 137})])
    assert oom.reason == "OOMKilled" and "1Gi" in oom.message
    tail = pod({"reason": "Error", "exitCode": 2, "message": "Traceback...\nerror: invalid n_estimators=-1\n"})
    assert job_outcome(failed_job("PodFailurePolicy"), [tail]).message == "invalid n_estimators=-1"


def test_dns_names_fit_and_are_valid() -> None:
    name = dns_name("A_Very_Long_Name" * 6, "check-g12-1234")
    assert len(name) <= 63 and name.endswith("-check-g12-1234") and name == name.lower() and "_" not in name


def test_a_finished_run_gives_its_job_a_ttl_once_and_only_after_its_result_is_recorded() -> None:
    job = {"metadata": {"name": "iris-train-01234567", "namespace": "ns"}, "spec": {}}
    outcome = JobOutcome("Succeeded", "2026-11-23T11:59:00Z", "2026-11-23T11:59:40Z")
    tags = {contract.TAG_REGISTERED_MODEL: "iris-classifier", contract.TAG_REGISTERED_VERSION: "3"}
    recording = plan_trainingrun(observe_trainingrun(trainingrun(), None, job, outcome, run(tags)), NOW)
    assert recording.status["phase"] == "Succeeded" and recording.patches == []  # the result is written first
    done = plan_trainingrun(observe_trainingrun(trainingrun(recording.status), None, job), NOW)
    ((ref, patch),) = done.patches
    assert (ref["kind"], ref["metadata"]["name"], patch) == (
        "Job",
        job["metadata"]["name"],
        {"spec": {"ttlSecondsAfterFinished": 3600}},
    )
    expiring = {**job, "spec": {"ttlSecondsAfterFinished": 3600}}
    assert plan_trainingrun(observe_trainingrun(trainingrun(recording.status), None, expiring), NOW).patches == []
    assert plan_trainingrun(observe_trainingrun(trainingrun(recording.status)), NOW).patches == []


def test_a_finished_job_whose_run_mlflow_cannot_show_waits_and_says_why() -> None:
    job = {"metadata": {"name": "j"}}
    failed = JobOutcome("Failed", reason="BackoffLimitExceeded", message="the worker failed")
    plan = plan_trainingrun(
        observe_trainingrun(
            trainingrun(), None, job, failed, run_error=MlflowError("MLflow at http://m is unreachable")
        ),
        NOW,
    )
    assert plan.status.get("phase") != "Failed" and "cannot be read yet" in plan.status["message"]
    degraded = next(c for c in plan.status["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "MlflowUnavailable")
    assert plan.requeue_after == 15.0 and not plan.events and not plan.creates


def test_a_trainingrun_into_another_namespaces_model_is_refused_and_rechecked() -> None:
    ready = dataset({"phase": "Ready", "version": "sha256:abc"})
    theirs = ModelOwnership("iris-classifier", exists=True, owner="team-a")
    plan = plan_trainingrun(observe_trainingrun(trainingrun(), ready, ownership=theirs), NOW)
    assert plan.status["phase"] == "Refused" and not plan.creates, "no Job, so nothing is registered"
    ready_condition = next(c for c in plan.status["conditions"] if c["type"] == "Ready")
    assert (ready_condition["status"], ready_condition["reason"]) == ("False", "ModelOwnedElsewhere")
    assert "team-a" in plan.status["message"] and [e.reason for e in plan.events] == ["ModelOwnedElsewhere"]
    assert plan.requeue_after == 15.0
    again = trainingrun()
    again["status"] = plan.status
    later = plan_trainingrun(observe_trainingrun(again, ready, ownership=theirs), NOW + timedelta(minutes=20))
    assert not later.events and not later.creates, "the Event is sent once"
    assert later.requeue_after == 300.0, "refused for 20 min: looked at every 5 min"
    adopted = ModelOwnership("iris-classifier", exists=True, owner="ns")
    started = plan_trainingrun(observe_trainingrun(again, ready, ownership=adopted), NOW + timedelta(minutes=21))
    assert started.status["phase"] == "Pending" and len(started.creates) == 1, "given to this namespace, it runs"


def test_a_trainingrun_whose_model_owner_cannot_be_read_creates_nothing() -> None:
    ready = dataset({"phase": "Ready", "version": "sha256:abc"})
    down = MlflowError("connection refused")
    plan = plan_trainingrun(observe_trainingrun(trainingrun(), ready, ownership_error=down), NOW)
    assert not plan.creates and plan.status["phase"] == "Pending"
    degraded = next(c for c in plan.status["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "MlflowUnavailable")
    assert plan.requeue_after is not None and plan.requeue_after >= 15.0
    new_model = ModelOwnership("iris-classifier", exists=False)
    plan = plan_trainingrun(observe_trainingrun(trainingrun(), ready, ownership=new_model), NOW)
    assert len(plan.creates) == 1, "a model nobody registered yet is this namespace's to create"
