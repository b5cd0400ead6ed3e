"""The Dataset controller's gather: a validation Job's pods and MLflow run read into the observation, failures
as data; through the runtime, MLflow down while the Job finished still writes status and backs off by itself."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
from mlops_operator import contract
from mlops_operator.controllers.datasets import gather, reconcile_dataset
from mlops_operator.integrations.mlflow import MlflowError, RunInfo
from mlops_operator.kubeapi import ApiError, job_path

from ..builders import condition
from .fakes import FakeKube, FakeMlflow, fake_runtime, merged, requeued_in, stop_timers

Obj = dict[str, Any]
CHECK = "iris-check-g1-0"
PATH = "/apis/mlops.dev/v1alpha1/namespaces/ns/datasets/iris"
KEY = ("Dataset", "ns", "iris")
NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
DOWN = MlflowError("MLflow at http://mlflow:5000 is unreachable: ConnectError('[Errno 111] Connection refused')")


OWNER = {"kind": "Dataset", "name": "iris", "uid": "d-uid", "controller": True}


def dataset(status: Obj, resource_version: str = "7") -> Obj:
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "Dataset",
        "metadata": {
            "namespace": "ns",
            "name": "iris",
            "uid": "d-uid",
            "generation": 1,
            "resourceVersion": resource_version,
        },
        "spec": {"source": {"uri": "file:///d/iris.csv", "format": "csv"}, "target": "species"},
        "status": status,
    }


def check_job(state: str) -> Obj:
    job_condition = {"type": state, "status": "True", "lastTransitionTime": "2026-11-23T11:59:40Z"}
    if state == "Failed":
        job_condition["reason"] = "BackoffLimitExceeded"
    return {
        "metadata": {
            "name": CHECK,
            "namespace": "ns",
            "labels": {contract.LABEL_OWNER_KIND: "Dataset"},
            "ownerReferences": [OWNER],
        },
        "spec": {},
        "status": {"startTime": "2026-11-23T11:59:00Z", "conditions": [job_condition]},
    }


def valid_run() -> RunInfo:
    tags = {
        contract.TAG_OUTCOME: contract.OUTCOME_VALID,
        contract.TAG_DATASET_VERSION: "sha256:abc",
        contract.TAG_VIOLATIONS: "[]",
    }
    return RunInfo(run_id="r1", status="FINISHED", metrics={"rows": 150}, tags=tags)


def test_gather_keeps_a_failed_pods_read_and_an_mlflow_error_as_data() -> None:
    async def scenario() -> None:
        kube, mlflow = FakeKube(), FakeMlflow()
        rt = fake_runtime(kube, mlflow)
        rt.store.put("Job", check_job("Failed"))
        kube.failing["/api/v1/namespaces/ns/pods"] = ApiError(403, '{"message": "pods is forbidden"}')
        mlflow.error = DOWN
        observed = await gather(rt, dataset({"observedGeneration": 1, "jobName": CHECK}), NOW)
        check = observed.check
        assert check.name == CHECK and check.job is not None and check.outcome is not None
        assert check.outcome.state == "Failed"
        assert check.pods_error == f"the pods of Job {CHECK} could not be read: 403 pods is forbidden"
        assert check.run_error is DOWN and check.run is None

    asyncio.run(scenario())


def test_gather_keeps_an_unreadable_job_as_data_and_reads_nothing_after_it() -> None:
    async def scenario() -> None:
        kube, mlflow = FakeKube(), FakeMlflow()
        kube.failing[job_path("ns", CHECK)] = httpx.ConnectError("connection refused")
        observed = await gather(fake_runtime(kube, mlflow), dataset({"observedGeneration": 1, "jobName": CHECK}), NOW)
        assert (
            observed.check.job is None
            and observed.check.job_error == f"Job {CHECK} could not be read: connection refused"
        )
        assert mlflow.searches == 0

    asyncio.run(scenario())


def test_mlflow_down_when_the_check_finished_writes_status_and_backs_off_then_recovers() -> None:
    async def scenario() -> None:
        kube, mlflow = FakeKube(), FakeMlflow([valid_run()])
        rt = fake_runtime(kube, mlflow)
        rt.reconcilers["Dataset"] = reconcile_dataset
        rt.store.put("Job", check_job("Complete"))
        body = dataset({"observedGeneration": 1, "phase": "Validating", "jobName": CHECK})

        mlflow.error = DOWN
        await rt.reconcile("Dataset", "ns", "iris", body)
        (written,) = kube.status_writes(PATH)
        assert written["phase"] == "Validating" and written["checkedJob"] is None
        assert "cannot be read yet" in written["message"]
        degraded = condition(written, "Degraded")
        assert (degraded["status"], degraded["reason"]) == ("True", "MlflowUnavailable")
        assert requeued_in(rt, KEY) == 15 and KEY not in rt.failures  # the plan's back-off, not an escaped error

        mlflow.error = None
        stop_timers(rt)
        await rt.reconcile("Dataset", "ns", "iris", dataset(merged(body["status"], written), resource_version="8"))
        recovered = kube.status_writes(PATH)[-1]
        assert (recovered["phase"], recovered["version"], recovered["checkedJob"]) == ("Ready", "sha256:abc", CHECK)
        assert condition(recovered, "Degraded")["status"] == "False"
        assert condition(recovered, "Ready")["status"] == "True"
        assert requeued_in(rt, KEY) is None  # no refreshInterval: nothing to look at until something changes
        stop_timers(rt)

    asyncio.run(scenario())
