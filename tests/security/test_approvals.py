"""A manual approval on the real cluster is auditable: status and the MLflow version say which field manager
set spec.promote and when, and the alias moves only after that record is on the version."""

from __future__ import annotations

import textwrap

import httpx

from tests.fixtures.cluster import Kube, OperatorProcess, wait_for
from tests.integration.test_serving import alias_version, fitted_forest, register


def version_tags(kube: Kube, model: str, version: int) -> dict[str, str]:
    response = httpx.get(
        f"{kube.mlflow_url}/api/2.0/mlflow/model-versions/get", params={"name": model, "version": str(version)}
    )
    response.raise_for_status()
    return {t["key"]: t["value"] for t in response.json()["model_version"].get("tags", [])}


def test_a_manual_approval_is_recorded_in_status_and_on_the_mlflow_version(
    crds_installed: Kube, namespace: str, operator_process: OperatorProcess
) -> None:
    kube, model = crds_installed, f"approved-{namespace}"
    version = register(kube, model, fitted_forest(5, 1), namespace)
    kube.apply(
        textwrap.dedent(
            f"""
            apiVersion: mlops.dev/v1alpha1
            kind: ModelVersion
            metadata: {{name: approve-me}}
            spec:
              registeredModel: {model}
              version: {version}
              promotion: {{alias: production, mode: manual}}
            """
        ),
        namespace,
    )
    mv = "modelversion.mlops.dev/approve-me"
    wait_for(
        "the version to await approval",
        lambda: (kube.json("get", mv, "-n", namespace).get("status") or {}).get("phase") == "Evaluating",
        timeout=60,
    )
    assert "mlops.dev/approved-by" not in version_tags(kube, model, version)
    kube.run("patch", mv, "-n", namespace, "--type", "merge", "-p", '{"spec":{"promote":true}}')
    promoted = wait_for(
        "the approved version to be promoted",
        lambda: (s := kube.json("get", mv, "-n", namespace).get("status") or {}).get("phase") == "Promoted" and s,
        timeout=60,
    )
    approval = promoted["approval"]
    assert (approval["by"], approval["via"]) == ("kubectl-patch", "Update") and approval["at"].endswith("Z")
    tags = version_tags(kube, model, version)
    assert tags["mlops.dev/approved-by"] == "kubectl-patch" and tags["mlops.dev/approved-at"] == approval["at"]
    assert alias_version(kube, model) == version
    events = kube.json("get", "events", "-n", namespace, "--field-selector", "reason=Approved")["items"]
    assert any("approved by kubectl-patch" in e["message"] for e in events)
