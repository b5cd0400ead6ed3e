"""No adoption by name: a child name held by an object the owner does not control blocks the owner with
NameConflict, leaves the object untouched, and clears once the name is free (through the runtime's apply)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from mlops_operator import contract
from mlops_operator.controllers.children import NameConflictError
from mlops_operator.controllers.datasets import reconcile_dataset
from mlops_operator.controllers.deployments import reconcile_deployment
from mlops_operator.controllers.runtime import Runtime
from mlops_operator.kubeapi import job_path
from mlops_operator.planning.plan import Plan

from ..builders import condition
from .fakes import FakeKube, FakeMlflow, fake_runtime, merged, requeued_in, stop_timers

Obj = dict[str, Any]
DATASET_PATH = "/apis/mlops.dev/v1alpha1/namespaces/ns/datasets/iris"
DEPLOYMENT_PATH = "/apis/mlops.dev/v1alpha1/namespaces/ns/deployments/iris"
SERVICE_PATH = "/api/v1/namespaces/ns/services/iris"


def dataset(status: Obj, resource_version: str = "7") -> Obj:
    meta = {"namespace": "ns", "name": "iris", "uid": "d-uid", "generation": 1, "resourceVersion": resource_version}
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "Dataset",
        "metadata": meta,
        "spec": {"source": {"uri": "https://data.example/iris.csv", "format": "csv"}, "target": "species"},
        "status": status,
    }


def squatter_job(name: str, owner: Obj | None) -> Obj:
    """A Job someone else made under the check's name, labelled like ours, that claims it succeeded."""
    meta: Obj = {"name": name, "namespace": "ns", "labels": {contract.LABEL_MANAGED_BY: contract.MANAGED_BY}}
    if owner is not None:
        meta["ownerReferences"] = [owner]
    return {"metadata": meta, "spec": {}, "status": {"conditions": [{"type": "Complete", "status": "True"}]}}


def test_a_job_squatting_on_the_check_name_blocks_the_dataset_and_is_never_adopted() -> None:
    async def scenario() -> None:
        kube, mlflow = FakeKube(), FakeMlflow()
        rt = fake_runtime(kube, mlflow)
        first = await reconcile_dataset(rt, dataset({}))
        name = first.status["jobName"]
        other_dataset = {"kind": "Dataset", "name": "other", "uid": "other-uid", "controller": True}
        job = squatter_job(name, other_dataset)
        kube.objects[job_path("ns", name)] = job
        rt.store.put("Job", job)

        # Its "success" is not this Dataset's: nothing is created, read from MLflow or patched.
        plan = await reconcile_dataset(rt, dataset({"observedGeneration": 1, "jobName": name}))
        conflict = condition(plan.status, "NameConflict")
        assert conflict["status"] == "True" and conflict["reason"] == "NameConflict"
        assert f"Job {name} exists and is controlled by Dataset/other" in conflict["message"]
        ready = condition(plan.status, "Ready")
        assert ready["status"] == "False" and ready["reason"] == "NameConflict"
        assert plan.status.get("phase") != "Ready" and not plan.creates and not plan.creates_after_status
        assert [e.reason for e in plan.events] == ["NameConflict"] and plan.events[0].type == "Warning"
        assert plan.requeue_after == 15 and mlflow.searches == 0 and not plan.patches

        # The name is freed: the next pass creates the check's own Job and says the conflict is over.
        del kube.objects[job_path("ns", name)]
        rt.store.delete("Job", "ns", name)
        status = merged({"observedGeneration": 1, "jobName": name}, plan.status)
        plan = await reconcile_dataset(rt, dataset(status))
        assert condition(plan.status, "NameConflict")["status"] == "False"
        assert [j["metadata"]["name"] for j in plan.creates_after_status] == [name]
        assert "NameConflictResolved" in [e.reason for e in plan.events]
        assert rt.store.conflicts == {}

    asyncio.run(scenario())


def test_a_create_that_finds_a_foreign_object_records_the_conflict_and_touches_nothing() -> None:
    async def scenario() -> None:
        kube, mlflow = FakeKube(), FakeMlflow()
        rt = fake_runtime(kube, mlflow)
        body = dataset({})
        kube.objects[DATASET_PATH] = body
        plan = await reconcile_dataset(rt, body)
        name = plan.status["jobName"]
        kube.objects[job_path("ns", name)] = squatter_job(name, None)  # made by hand, no controller at all
        with pytest.raises(NameConflictError):
            await rt.apply("Dataset", body, plan)
        assert all(b["kind"] == "Event" for _, b in kube.created)
        recorded = rt.store.conflicts["d-uid"]
        assert [c.message for c in recorded.values()] == [
            f"Job {name} exists and has no controller; it is left untouched: delete or rename it to go on"
        ]
        assert not [p for p, _ in kube.patches if p.startswith("/apis/batch")]

        # Through the reconcile loop the pass that follows plans NameConflict (not a back-off storm).
        rt.reconcilers["Dataset"] = reconcile_dataset
        await rt.reconcile("Dataset", "ns", "iris", body)
        written = kube.status_writes(DATASET_PATH)
        assert condition(written[-1], "NameConflict")["status"] == "True"
        assert requeued_in(rt, ("Dataset", "ns", "iris")) == 15
        stop_timers(rt)

    asyncio.run(scenario())


def test_a_create_that_finds_its_own_child_goes_on_and_patches_it() -> None:
    async def scenario() -> None:
        kube, mlflow = FakeKube(), FakeMlflow()
        rt = fake_runtime(kube, mlflow)
        owner = {"kind": "Deployment", "name": "iris", "uid": "dep-uid", "controller": True}
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "iris", "namespace": "ns", "ownerReferences": [owner]},
            "spec": {"ports": []},
        }
        kube.objects[SERVICE_PATH] = service
        await rt.create_or_patch(service)
        assert [p for p, _ in kube.patches] == [SERVICE_PATH] and rt.store.conflicts == {}

    asyncio.run(scenario())


def deployment() -> Obj:
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "Deployment",
        "metadata": {"namespace": "ns", "name": "iris", "uid": "dep-uid", "generation": 1, "resourceVersion": "3"},
        "spec": {"model": {"registeredModel": "iris-classifier", "version": 1}, "replicas": 1},
        "status": {},
    }


def test_a_service_of_the_deployments_name_owned_by_another_app_blocks_every_apply() -> None:
    async def scenario() -> None:
        kube, mlflow = FakeKube(), FakeMlflow()
        mlflow.models["iris-classifier"] = {
            "name": "iris-classifier",
            "tags": [{"key": contract.TAG_OWNER_NAMESPACE, "value": "ns"}],
        }
        rt = fake_runtime(kube, mlflow)
        other = {"kind": "Deployment", "name": "web", "uid": "web-uid", "controller": True}
        service = {
            "metadata": {
                "name": "iris",
                "namespace": "ns",
                "labels": {contract.LABEL_MANAGED_BY: contract.MANAGED_BY},
                "ownerReferences": [other],
            },
            "spec": {},
        }
        kube.objects[SERVICE_PATH] = service
        rt.store.put("Service", service)
        plan = await reconcile_deployment(rt, deployment())
        assert (
            "Service iris exists and is controlled by Deployment/web"
            in condition(plan.status, "NameConflict")["message"]
        )
        assert plan.applies == [] and plan.patches == [] and plan.alias_moves == []
        assert condition(plan.status, "Ready")["reason"] == "NameConflict"

    asyncio.run(scenario())


async def first_deployment_plan() -> tuple[FakeKube, Runtime, Obj, Plan]:
    """A Deployment on a model its namespace owns, planned once: (API server, runtime, body, plan)."""
    kube, mlflow = FakeKube(), FakeMlflow()
    mlflow.models["iris-classifier"] = {
        "name": "iris-classifier",
        "tags": [{"key": contract.TAG_OWNER_NAMESPACE, "value": "ns"}],
    }
    rt = fake_runtime(kube, mlflow)
    body = deployment()
    plan = await reconcile_deployment(rt, body)
    assert plan is not None
    return kube, rt, body, plan


def test_a_deployments_children_are_created_without_reading_their_names_first() -> None:
    async def scenario() -> None:
        kube, rt, body, plan = await first_deployment_plan()
        assert len(plan.applies) >= 3
        kube.reads.clear()
        await rt.apply("Deployment", body, plan)
        kinds = [b["kind"] for _, b in kube.created if b["kind"] != "Event"]
        assert sorted(kinds) == sorted(c["kind"] for c in plan.applies)
        # Services and budgets before the tracks, so a held name is found before any pod is asked for.
        assert kinds == sorted(kinds, key=lambda kind: kind == "Deployment") and "Deployment" in kinds
        assert kube.reads == [] and kube.deleted == []
        stop_timers(rt)

    asyncio.run(scenario())


def test_a_name_held_by_another_stops_the_set_and_deletes_what_it_created() -> None:
    async def scenario() -> None:
        kube, rt, body, plan = await first_deployment_plan()
        held = next(c for c in plan.applies if c["kind"] == "Deployment" and c["metadata"]["name"].endswith("-canary"))
        path = f"/apis/apps/v1/namespaces/ns/deployments/{held['metadata']['name']}"
        kube.objects[path] = {"metadata": {"name": held["metadata"]["name"], "namespace": "ns"}, "spec": {}}
        with pytest.raises(NameConflictError):
            await rt.apply("Deployment", body, plan)
        created = [f"{collection}/{b['metadata']['name']}" for collection, b in kube.created if b["kind"] != "Event"]
        assert created and path not in created
        assert kube.deleted == list(reversed(created))  # nothing of the set is left behind
        assert kube.objects[path]["spec"] == {} and not [p for p, _ in kube.patches if p == path]
        assert [c.kind for c in rt.store.conflicts["dep-uid"].values()] == ["Deployment"]
        for child in created:
            name = child.rsplit("/", 1)[1]
            assert all(
                rt.store.get(kind, "ns", name) is None
                for kind in ("Service", "PodDisruptionBudget", "ServingDeployment")
            )
        stop_timers(rt)

    asyncio.run(scenario())


def test_children_without_owner_references_are_claimed_by_their_creator_annotation() -> None:
    """A retraining TrainingRun (and a run's ModelVersion) outlives its creator, so it carries no
    ownerReference; the creator's uid annotation decides, and an unmarked object of that name is a conflict."""

    async def scenario() -> None:
        kube, mlflow = FakeKube(), FakeMlflow()
        rt = fake_runtime(kube, mlflow)
        path = "/apis/mlops.dev/v1alpha1/namespaces/ns/trainingruns/iris-retrain-1"
        run = {
            "apiVersion": "mlops.dev/v1alpha1",
            "kind": "TrainingRun",
            "metadata": {
                "name": "iris-retrain-1",
                "namespace": "ns",
                "annotations": {contract.ANNOTATION_CONTROLLER_UID: "dep-uid"},
            },
            "spec": {},
        }
        kube.objects[path] = {**run, "metadata": {**run["metadata"], "annotations": {}}}  # someone's, unmarked
        with pytest.raises(NameConflictError, match="TrainingRun iris-retrain-1 exists and has no controller"):
            await rt.create(run)
        assert list(rt.store.conflicts["dep-uid"]) == [path]
        kube.objects[path] = run  # the operator's own, from before a restart
        assert await rt.create(run) is False
        assert await rt.name_conflicts("dep-uid") == () and rt.store.conflicts == {}

    asyncio.run(scenario())
