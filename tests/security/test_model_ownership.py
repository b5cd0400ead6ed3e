"""Two namespaces, one MLflow: a registered model belongs to one namespace and the other can neither
register into it, move its alias nor serve it, until the owner shares it for serving.

The model is registered straight into MLflow (as a platform admin would import one) and adopted with
`mlops-operator models adopt`, the documented action; ownership of worker-created models is covered by
the worker's claim at registration (tests/unit/test_worker_ownership.py) and the end-to-end loop.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import httpx

from tests.fixtures.cluster import Kube, OperatorProcess, condition, wait_for
from tests.integration.test_serving import alias_version, fitted_forest, register, set_alias


def models_cli(kube: Kube, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlops_operator", "models", *args, "--tracking-uri", kube.mlflow_url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def registered_model(kube: Kube, name: str) -> dict[str, Any]:
    response = httpx.get(f"{kube.mlflow_url}/api/2.0/mlflow/registered-models/get", params={"name": name})
    response.raise_for_status()
    return dict(response.json()["registered_model"])


def versions(kube: Kube, name: str) -> list[int]:
    response = httpx.get(f"{kube.mlflow_url}/api/2.0/mlflow/model-versions/search", params={"filter": f"name='{name}'"})
    response.raise_for_status()
    return sorted(int(v["version"]) for v in response.json().get("model_versions", []))


def events(kube: Kube, namespace: str, reason: str) -> list[str]:
    items = kube.json("get", "events", "-n", namespace, "--field-selector", f"reason={reason}")["items"]
    return [e["message"] for e in items]


def ready_reason(kube: Kube, namespace: str, resource: str) -> str | None:
    obj = kube.json("get", resource, "-n", namespace)
    ready = condition(obj, "Ready")
    return ready["reason"] if ready else None


def manifests(model: str) -> str:
    return textwrap.dedent(
        f"""
        apiVersion: mlops.dev/v1alpha1
        kind: ModelVersion
        metadata: {{name: steal-2}}
        spec: {{registeredModel: {model}, version: 2, promotion: {{alias: production, mode: auto}}}}
        ---
        apiVersion: mlops.dev/v1alpha1
        kind: TrainingRun
        metadata: {{name: steal-train}}
        spec:
          datasetRef: {{name: anything}}
          estimator: sklearn.linear_model.LogisticRegression
          registeredModel: {model}
        ---
        apiVersion: mlops.dev/v1alpha1
        kind: Deployment
        metadata: {{name: borrowed}}
        spec:
          model: {{registeredModel: {model}, alias: production}}
          replicas: 1
        """
    )


def test_another_namespace_can_neither_register_promote_nor_serve_until_shared(
    crds_installed: Kube, namespace: str, other_namespace: str, tmp_path: Any
) -> None:
    kube, owner, other = crds_installed, namespace, other_namespace
    model = f"owned-{owner}"
    for seed in (1, 2):
        register(kube, model, fitted_forest(5, seed), None)  # unowned until adopted below
    set_alias(kube, model, 1)
    adopted = models_cli(kube, "adopt", model, "--namespace", owner)
    assert adopted.returncode == 0, adopted.stdout + adopted.stderr
    taken = models_cli(kube, "adopt", model, "--namespace", other)  # no silent takeover by a second adopt
    assert taken.returncode == 1 and f"belongs to namespace {owner}" in taken.stdout

    op = OperatorProcess(kube, owner, tmp_path / "operator.log", also_watch=(other,)).start()
    try:
        kube.apply(manifests(model), other)
        for resource in (
            "modelversion.mlops.dev/steal-2",
            "trainingrun.mlops.dev/steal-train",
            "deployment.mlops.dev/borrowed",
        ):
            wait_for(
                f"{resource} refused",
                lambda r=resource: ready_reason(kube, other, r) == "ModelOwnedElsewhere",
                timeout=60,
            )
        for resource in (
            "modelversion.mlops.dev/steal-2",
            "trainingrun.mlops.dev/steal-train",
            "deployment.mlops.dev/borrowed",
        ):
            obj = kube.json("get", resource, "-n", other)
            assert obj["status"]["phase"] == "Refused", obj["status"]
            assert f"belongs to namespace {owner}" in obj["status"]["message"]
        assert any(owner in m for m in events(kube, other, "ModelOwnedElsewhere"))
        # Nothing happened in MLflow or Kubernetes on the other namespace's behalf.
        assert alias_version(kube, model) == 1 and versions(kube, model) == [1, 2]
        assert kube.json("get", "jobs", "-n", other)["items"] == []
        assert kube.json("get", "deployments.apps", "-n", other)["items"] == []

        # The owner shares it for serving: the Deployment serves; the rest stays refused.
        shared = models_cli(kube, "share", model, "--with", other)
        assert shared.returncode == 0, shared.stdout + shared.stderr
        wait_for(
            "the shared model served in the other namespace",
            lambda: (
                (kube.json("get", "deployment.mlops.dev/borrowed", "-n", other).get("status") or {}).get("phase")
                == "Healthy"
            ),
            timeout=150,
        )
        assert ready_reason(kube, other, "modelversion.mlops.dev/steal-2") == "ModelOwnedElsewhere"
        assert alias_version(kube, model) == 1

        # Sharing revoked: the serving track is scaled to zero.
        assert models_cli(kube, "share", model).returncode == 0
        wait_for(
            "the track scaled down once sharing was revoked",
            lambda: kube.json("get", "deployments.apps/borrowed-stable", "-n", other)["spec"]["replicas"] == 0,
            timeout=150,
        )
        assert ready_reason(kube, other, "deployment.mlops.dev/borrowed") == "ModelOwnedElsewhere"
    except AssertionError:
        print(kube.run("get", "mlops,deploy,pods,events", "-n", other, check=False).stdout)
        print(op.log_tail(120))
        raise
    finally:
        op.stop()


def test_a_model_created_outside_the_operator_is_served_only_after_an_explicit_adoption(
    crds_installed: Kube, namespace: str, operator_process: OperatorProcess
) -> None:
    kube = crds_installed
    model = f"legacy-{namespace}"
    register(kube, model, fitted_forest(5, 1), None)
    set_alias(kube, model, 1)
    kube.apply(
        textwrap.dedent(
            f"""
            apiVersion: mlops.dev/v1alpha1
            kind: Deployment
            metadata: {{name: legacy}}
            spec: {{model: {{registeredModel: {model}, alias: production}}, replicas: 1}}
            """
        ),
        namespace,
    )
    wait_for(
        "the unowned model refused",
        lambda: ready_reason(kube, namespace, "mldeploy/legacy") == "ModelNotAdopted",
        timeout=60,
    )
    assert "models adopt" in kube.json("get", "mldeploy/legacy", "-n", namespace)["status"]["message"]
    assert kube.json("get", "deployments.apps", "-n", namespace)["items"] == []
    assert "mlops.dev/owner-namespace" not in {t["key"] for t in registered_model(kube, model).get("tags", [])}

    assert models_cli(kube, "adopt", model, "--namespace", namespace).returncode == 0
    wait_for(
        "the adopted model served",
        lambda: (kube.json("get", "mldeploy/legacy", "-n", namespace).get("status") or {}).get("phase") == "Healthy",
        timeout=150,
    )
