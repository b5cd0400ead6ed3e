"""The runtime's outside effects after a status write: version tags before alias moves, and MLflow down as
a back-off (the plan is retried, nothing escapes the reconcile)."""

from __future__ import annotations

import asyncio

from mlops_operator.integrations.mlflow import MlflowError
from mlops_operator.planning.plan import Plan

from .fakes import FakeKube, FakeMlflow, fake_runtime, stop_timers

BODY = {
    "apiVersion": "mlops.dev/v1alpha1",
    "kind": "ModelVersion",
    "metadata": {"namespace": "ns", "name": "iris-2", "uid": "u", "generation": 1, "resourceVersion": "3"},
    "spec": {},
    "status": {"phase": "Approved"},
}


def approval_plan() -> Plan:
    plan = Plan(status={"phase": "Approved", "message": "approved"})
    plan.version_tags.append(
        ("iris", 2, {"mlops.dev/approved-by": "kubectl-patch", "mlops.dev/approved-via": "Update"})
    )
    plan.alias_moves.append(("iris", "production", 2))
    return plan


def test_an_approvals_tags_are_set_before_the_alias_moves() -> None:
    async def scenario() -> None:
        kube, mlflow = FakeKube(), FakeMlflow()
        rt = fake_runtime(kube, mlflow)
        plan = approval_plan()
        await rt.apply("ModelVersion", BODY, plan)
        assert mlflow.effects == [
            ("tag", "iris", 2, "mlops.dev/approved-by", "kubectl-patch"),
            ("tag", "iris", 2, "mlops.dev/approved-via", "Update"),
            ("alias", "iris", "production", 2),
        ]
        assert plan.requeue_after is not None and plan.requeue_after <= 5, "the next pass confirms from MLflow"
        stop_timers(rt)

    asyncio.run(scenario())


def test_mlflow_down_while_tagging_moves_no_alias_and_backs_off() -> None:
    async def scenario() -> None:
        kube, mlflow = FakeKube(), FakeMlflow()
        mlflow.error = MlflowError("MLflow at http://mlflow:5000 is unreachable")
        rt = fake_runtime(kube, mlflow)
        plan = approval_plan()
        await rt.apply("ModelVersion", BODY, plan)
        assert mlflow.effects == [] and plan.requeue_after == 2.0
        assert kube.status_writes("/apis/mlops.dev/v1alpha1/namespaces/ns/modelversions/iris-2") != []
        again = approval_plan()
        await rt.apply("ModelVersion", BODY, again)  # inside the back-off: not tried again yet
        assert mlflow.effects == [] and again.requeue_after is not None and 0 < again.requeue_after <= 2.0
        stop_timers(rt)

    asyncio.run(scenario())
