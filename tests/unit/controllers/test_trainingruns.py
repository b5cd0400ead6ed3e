"""The TrainingRun controller's gather: its Job, run and Dataset read into the observation, failures as data;
through the runtime, MLflow down after the Job finished still writes status and backs off by itself."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from mlops_operator import contract
from mlops_operator.controllers.trainingruns import gather, reconcile_trainingrun
from mlops_operator.integrations.mlflow import MlflowError, RunInfo

from ..builders import condition
from .fakes import FakeKube, FakeMlflow, fake_runtime, merged, requeued_in, stop_timers

Obj = dict[str, Any]
JOB = "iris-train-01234567"
PATH = "/apis/mlops.dev/v1alpha1/namespaces/ns/trainingruns/iris-train"
DATASET = "/apis/mlops.dev/v1alpha1/namespaces/ns/datasets/iris"
KEY = ("TrainingRun", "ns", "iris-train")
DOWN = MlflowError("MLflow at http://mlflow:5000 is unreachable: ConnectError('[Errno 111] Connection refused')")


OWNER = {"kind": "TrainingRun", "name": "iris-train", "uid": "0123456789ab", "controller": True}


def trainingrun(status: Obj, resource_version: str = "7") -> Obj:
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "TrainingRun",
        "metadata": {
            "namespace": "ns",
            "name": "iris-train",
            "uid": "0123456789ab",
            "generation": 1,
            "resourceVersion": resource_version,
        },
        "spec": {
            "datasetRef": {"name": "iris"},
            "estimator": "sklearn.ensemble.RandomForestClassifier",
            "registeredModel": "iris-classifier",
        },
        "status": status,
    }


def finished_job() -> Obj:
    return {
        "metadata": {
            "name": JOB,
            "namespace": "ns",
            "annotations": {"mlops.dev/dataset-version": "sha256:abc"},
            "labels": {contract.LABEL_OWNER_KIND: "TrainingRun"},
            "ownerReferences": [OWNER],
        },
        "spec": {},
        "status": {
            "startTime": "2026-11-23T11:59:00Z",
            "completionTime": "2026-11-23T11:59:40Z",
            "conditions": [{"type": "Complete", "status": "True"}],
        },
    }


def registered_run() -> RunInfo:
    tags = {contract.TAG_REGISTERED_MODEL: "iris-classifier", contract.TAG_REGISTERED_VERSION: "3"}
    return RunInfo(run_id="r1", status="FINISHED", metrics={"accuracy": 0.96}, tags=tags)


def created(kube: FakeKube, kind: str) -> list[str]:
    return [body["metadata"]["name"] for _, body in kube.created if body["kind"] == kind]


def test_mlflow_down_after_the_job_finished_writes_status_and_backs_off_then_recovers() -> None:
    async def scenario() -> None:
        kube, mlflow = FakeKube(), FakeMlflow([registered_run()])
        rt = fake_runtime(kube, mlflow)
        rt.reconcilers["TrainingRun"] = reconcile_trainingrun
        rt.store.put("Job", finished_job())
        body = trainingrun(
            {"observedGeneration": 1, "phase": "Running", "jobName": JOB, "datasetVersion": "sha256:abc"}
        )

        mlflow.error = DOWN
        await rt.reconcile("TrainingRun", "ns", "iris-train", body)
        (written,) = kube.status_writes(PATH)
        assert written["phase"] == "Running" and written["modelVersion"] is None
        degraded = condition(written, "Degraded")
        assert (degraded["status"], degraded["reason"]) == ("True", "MlflowUnavailable")
        assert created(kube, "ModelVersion") == [] and requeued_in(rt, KEY) == 15 and KEY not in rt.failures

        mlflow.error = None
        stop_timers(rt)
        await rt.reconcile("TrainingRun", "ns", "iris-train", trainingrun(merged(body["status"], written), "8"))
        recovered = kube.status_writes(PATH)[-1]
        assert (recovered["phase"], recovered["modelVersion"]) == ("Succeeded", "iris-classifier-3")
        assert condition(recovered, "Degraded")["status"] == "False"
        assert created(kube, "ModelVersion") == ["iris-classifier-3"] and requeued_in(rt, KEY) is None
        stop_timers(rt)

    asyncio.run(scenario())


def test_an_unreadable_dataset_is_data_the_run_waits_on_without_a_job() -> None:
    async def scenario() -> None:
        kube, mlflow = FakeKube(), FakeMlflow()
        kube.failing[DATASET] = httpx.ReadTimeout("timed out")
        rt = fake_runtime(kube, mlflow)
        rt.reconcilers["TrainingRun"] = reconcile_trainingrun
        observed = await gather(rt, trainingrun({}))
        assert observed.dataset is None and observed.dataset_error == "Dataset iris could not be read: timed out"
        await rt.reconcile("TrainingRun", "ns", "iris-train", trainingrun({}))
        (written,) = kube.status_writes(PATH)
        assert written["phase"] == "Pending" and condition(written, "Degraded")["reason"] == "ApiReadFailed"
        assert created(kube, "Job") == [] and requeued_in(rt, KEY) == 15 and KEY not in rt.failures
        stop_timers(rt)

    asyncio.run(scenario())


def test_a_finished_run_reads_only_the_stores_view_of_its_job() -> None:
    async def scenario() -> None:
        kube, mlflow = FakeKube(), FakeMlflow()
        kube.failing[DATASET] = httpx.ConnectError("must not be read")
        rt = fake_runtime(kube, mlflow)
        rt.store.put("Job", finished_job())
        observed = await gather(rt, trainingrun({"phase": "Succeeded", "jobName": JOB}))
        assert observed.job.job is not None and observed.job.outcome is None and observed.dataset is None
        assert mlflow.searches == 0 and observed.dataset_error is None

    asyncio.run(scenario())


def test_the_models_owner_is_read_before_a_job_exists_and_refuses_another_namespace() -> None:
    async def scenario() -> None:
        kube = FakeKube({DATASET: {"kind": "Dataset", "status": {"phase": "Ready", "version": "sha256:abc"}}})
        mlflow = FakeMlflow()
        owner_tag = {"key": contract.TAG_OWNER_NAMESPACE, "value": "team-a"}
        mlflow.models["iris-classifier"] = {"name": "iris-classifier", "tags": [owner_tag]}
        rt = fake_runtime(kube, mlflow)
        rt.reconcilers["TrainingRun"] = reconcile_trainingrun
        observed = await gather(rt, trainingrun({}))
        assert observed.ownership is not None and observed.ownership.owner == "team-a"
        await rt.reconcile("TrainingRun", "ns", "iris-train", trainingrun({}))
        (written,) = kube.status_writes(PATH)
        assert written["phase"] == "Refused" and condition(written, "Ready")["reason"] == "ModelOwnedElsewhere"
        assert created(kube, "Job") == [] and requeued_in(rt, KEY) == 15 and KEY not in rt.failures
        stop_timers(rt)

        mlflow.error = DOWN
        observed = await gather(rt, trainingrun({}))
        assert observed.ownership is None and observed.ownership_error is DOWN

    asyncio.run(scenario())


def test_a_missing_service_account_or_priority_class_holds_the_job_and_says_which() -> None:
    async def scenario() -> None:
        ready = {"spec": {}, "status": {"phase": "Ready", "version": "sha256:abc"}, "metadata": {"name": "iris"}}
        kube, mlflow = FakeKube({DATASET: ready}), FakeMlflow()
        rt = fake_runtime(kube, mlflow)
        rt.reconcilers["TrainingRun"] = reconcile_trainingrun
        body = trainingrun({})
        body["spec"]["pod"] = {"serviceAccountName": "ml-team", "priorityClassName": "ml-batch"}
        observed = await gather(rt, body)
        assert observed.missing_pod_refs == (
            "serviceAccountName: no ServiceAccount ml-team in ns",
            "priorityClassName: no PriorityClass ml-batch",
        )
        await rt.reconcile("TrainingRun", "ns", "iris-train", body)
        (written,) = kube.status_writes(PATH)
        ready_condition = condition(written, "Ready")
        assert (ready_condition["status"], ready_condition["reason"]) == ("False", "PodRefsMissing")
        assert "no ServiceAccount ml-team in ns" in written["message"] and "workloadPod" in written["message"]
        assert created(kube, "Job") == [] and requeued_in(rt, KEY) == 30
        assert [e["reason"] for _, e in kube.created if e["kind"] == "Event"] == ["PodRefsMissing"]

        # Both exist now (an unreadable one would not hold the Job either: the API server decides then).
        kube.objects["/api/v1/namespaces/ns/serviceaccounts/ml-team"] = {"metadata": {"name": "ml-team"}}
        kube.failing["/apis/scheduling.k8s.io/v1/priorityclasses/ml-batch"] = httpx.ReadTimeout("timed out")
        assert (await gather(rt, body)).missing_pod_refs == ()
        stop_timers(rt)

    asyncio.run(scenario())
