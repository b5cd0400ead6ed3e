"""The Deployment controller's gather: the Dataset onNewData watches comes from the store, as data, and a new
version of it has the serving run read in the same pass (no pass spent finding out)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from mlops_operator.controllers.deployments import _requester, gather
from mlops_operator.planning.deployment import plan_deployment
from mlops_operator.planning.observed import WatchedDataset

from .fakes import FakeKube, FakeMlflow, fake_runtime, stop_timers

Obj = dict[str, Any]
NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
RUN_PATH = "/apis/mlops.dev/v1alpha1/namespaces/ns/trainingruns/iris-run"
RUN_SPEC = {
    "datasetRef": {"name": "iris"},
    "estimator": "sklearn.tree.DecisionTreeClassifier",
    "registeredModel": "iris-classifier",
}


class HolderMlflow(FakeMlflow):
    """MLflow with version 3 holding the alias."""

    async def alias_version(self, name: str, alias: str) -> int | None:
        return 3


def body() -> Obj:
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "Deployment",
        "metadata": {"namespace": "ns", "name": "iris", "uid": "d-uid", "generation": 1},
        "spec": {
            "model": {"registeredModel": "iris-classifier", "alias": "production"},
            "retraining": {"enabled": True, "triggers": {"onNewData": True}},
        },
        "status": {"stableVersion": 3},
    }


def store_with(rt: Any, dataset: Obj | None) -> None:
    rt.store.put(
        "ModelVersion",
        {
            "metadata": {"namespace": "ns", "name": "iris-classifier-3"},
            "spec": {"registeredModel": "iris-classifier", "version": 3, "source": {"trainingRunRef": "iris-run"}},
            "status": {"phase": "Promoted"},
        },
    )
    run = {"metadata": {"namespace": "ns", "name": "iris-run"}, "spec": RUN_SPEC}
    rt.store.put("TrainingRun", {**run, "status": {"phase": "Succeeded", "datasetVersion": "sha256:aaa"}})
    if dataset is not None:
        rt.store.put("Dataset", {"metadata": {"namespace": "ns", "name": "iris"}, "spec": {}, "status": dataset})


def test_a_new_dataset_version_is_gathered_from_the_store_and_decided_in_one_pass() -> None:
    async def scenario() -> None:
        kube = FakeKube({RUN_PATH: {"spec": RUN_SPEC}})
        rt = fake_runtime(kube, HolderMlflow())
        store_with(rt, {"phase": "Ready", "version": "sha256:bbb"})
        observed = await gather(rt, body(), NOW)
        assert observed.retraining.dataset == WatchedDataset("iris", "Ready", "sha256:bbb", "sha256:aaa")
        assert observed.retraining.source_read and observed.retraining.source_spec == RUN_SPEC
        plan = plan_deployment(observed, NOW)
        (run,) = plan.creates_after_status
        assert run["metadata"]["annotations"]["mlops.dev/new-data-version"] == "sha256:bbb"
        stop_timers(rt)

    asyncio.run(scenario())


def test_an_absent_dataset_is_data_and_the_serving_run_is_not_read_for_it() -> None:
    async def scenario() -> None:
        kube = FakeKube({RUN_PATH: {"spec": RUN_SPEC}})
        rt = fake_runtime(kube, HolderMlflow())
        store_with(rt, None)
        observed = await gather(rt, body(), NOW)
        assert observed.retraining.dataset == WatchedDataset("iris", trained_on="sha256:aaa")
        assert not observed.retraining.source_read
        assert plan_deployment(observed, NOW).creates_after_status == []
        stop_timers(rt)

    asyncio.run(scenario())


def test_the_requester_of_a_rollout_request_is_read_from_managed_fields() -> None:
    def entry(manager: str, time: str, field: str) -> dict[str, Any]:
        return {"manager": manager, "time": time, "operation": "Update", "fieldsV1": {"f:spec": {f"f:{field}": {}}}}

    fields = [
        entry("kubectl-client-side-apply", "2026-12-04T10:00:00Z", "model"),
        entry("kubectl-mlops", "2026-12-04T11:00:00Z", "rolloutRequest"),
        entry("argocd-controller", "2026-12-04T09:00:00Z", "rolloutRequest"),
    ]
    body = {"metadata": {"managedFields": fields}, "spec": {"rolloutRequest": {"action": "Abort", "version": 2}}}
    assert _requester(body) == "kubectl-mlops"  # the newest writer of that field
    assert _requester({"metadata": {"managedFields": fields}, "spec": {}}) is None  # no request: nobody asked
    assert _requester({"metadata": {}, "spec": body["spec"]}) is None  # no managed fields sent
