"""No adoption by name, on the real cluster: objects someone else made under the names the operator's
children would get — a Job that already "succeeded" under a Dataset's check name, a Service under a
Deployment's name — are left exactly as they were; the owners say NameConflict (condition and Warning
Event) and create nothing; once the names are free, the operator creates its own children."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path
from typing import Any

from tests.fixtures.cluster import Kube, OperatorProcess, condition, wait_for
from tests.integration.test_serving import fitted_forest, register
from tests.integration.test_training import iris_dataset, sample_data

CHECK_JOB = "iris-check-g1-0"  # planning.dataset.check_job_name for generation 1


def squatting_job() -> str:
    """A suspended Job (no pod ever runs) under the check's name, labelled like ours, marked Complete."""
    return textwrap.dedent(
        f"""
        apiVersion: batch/v1
        kind: Job
        metadata:
          name: {CHECK_JOB}
          labels: {{app.kubernetes.io/managed-by: mlops-operator, mlops.dev/owner-kind: Dataset}}
        spec:
          suspend: true
          template:
            spec:
              restartPolicy: Never
              containers: [{{name: c, image: busybox, command: ["true"]}}]
        """
    )


def squatting_service(name: str) -> str:
    return textwrap.dedent(
        f"""
        apiVersion: v1
        kind: Service
        metadata: {{name: {name}, labels: {{team: web}}}}
        spec:
          selector: {{app: web}}
          ports: [{{name: http, port: 80, targetPort: 8080}}]
        """
    )


def get(kube: Kube, resource: str, namespace: str) -> dict[str, Any]:
    return kube.json("get", resource, "-n", namespace)


def conflict_of(kube: Kube, resource: str, namespace: str) -> dict[str, Any] | None:
    found = condition(get(kube, resource, namespace), "NameConflict")
    return found if found and found["status"] == "True" else None


def warnings(kube: Kube, namespace: str) -> list[str]:
    items = kube.json("get", "events", "-n", namespace, "--field-selector", "reason=NameConflict")["items"]
    return [e["message"] for e in items if e["type"] == "Warning"]


def test_children_names_held_by_others_are_never_adopted(crds_installed: Kube, namespace: str, tmp_path: Path) -> None:
    kube = crds_installed
    kube.apply(squatting_job() + "---\n" + squatting_service("iris-serve"), namespace)
    job_before = get(kube, f"job/{CHECK_JOB}", namespace)
    service_before = get(kube, "service/iris-serve", namespace)
    model = f"conflict-{namespace}"
    register(kube, model, fitted_forest(5, 1), namespace)
    csv = sample_data("iris", tmp_path / "iris.csv")
    op = OperatorProcess(kube, namespace, tmp_path / "operator.log").start()
    try:
        deployment = textwrap.dedent(
            f"""
            apiVersion: mlops.dev/v1alpha1
            kind: Deployment
            metadata: {{name: iris-serve}}
            spec: {{model: {{registeredModel: {model}, version: 1}}, replicas: 1}}
            """
        )
        kube.apply(iris_dataset(f"file://{csv}") + "---\n" + deployment, namespace)
        job_conflict = wait_for(
            "the Dataset's NameConflict", lambda: conflict_of(kube, "datasets.mlops.dev/iris", namespace), timeout=60
        )
        assert f"Job {CHECK_JOB} exists and has no controller" in job_conflict["message"]
        service_conflict = wait_for(
            "the Deployment's NameConflict", lambda: conflict_of(kube, "mldeploy/iris-serve", namespace), timeout=60
        )
        assert "Service iris-serve exists and has no controller" in service_conflict["message"]
        dataset = get(kube, "datasets.mlops.dev/iris", namespace)
        assert dataset["status"].get("phase") != "Ready" and condition(dataset, "Ready")["reason"] == "NameConflict"
        wait_for("both Warning Events", lambda: len(warnings(kube, namespace)) >= 2, timeout=30)

        # Nothing of theirs changed, and nothing of ours was created beside them (not even the stable track).
        job_after, service_after = get(kube, f"job/{CHECK_JOB}", namespace), get(kube, "service/iris-serve", namespace)
        assert job_after["metadata"]["resourceVersion"] == job_before["metadata"]["resourceVersion"]
        assert service_after["metadata"]["resourceVersion"] == service_before["metadata"]["resourceVersion"]
        assert "ownerReferences" not in job_after["metadata"] and "ownerReferences" not in service_after["metadata"]
        assert kube.json("get", "deployments.apps", "-n", namespace)["items"] == []
        assert [j["metadata"]["name"] for j in kube.json("get", "jobs", "-n", namespace)["items"]] == [CHECK_JOB]

        # The names are freed: the operator creates its own children and the conflicts clear.
        kube.run("delete", f"job/{CHECK_JOB}", "service/iris-serve", "-n", namespace, "--wait=true")
        wait_for(
            "the Dataset's own Job",
            lambda: (
                [
                    ref["uid"]
                    for j in kube.json("get", "jobs", "-n", namespace)["items"]
                    for ref in j["metadata"].get("ownerReferences", [])
                ]
                == [dataset["metadata"]["uid"]]
            ),
            timeout=120,
        )
        service = wait_for(
            "the Deployment's own Service",
            lambda: (
                kube.run("get", "service/iris-serve", "-n", namespace, check=False).returncode == 0
                and get(kube, "service/iris-serve", namespace)
            ),
            timeout=120,
        )
        assert service["metadata"]["ownerReferences"][0]["name"] == "iris-serve"
        wait_for(
            "both conflicts cleared",
            lambda: (
                conflict_of(kube, "datasets.mlops.dev/iris", namespace) is None
                and conflict_of(kube, "mldeploy/iris-serve", namespace) is None
            ),
            timeout=120,
        )
    except (AssertionError, subprocess.SubprocessError):
        print(kube.run("get", "mlops,jobs,services,deployments.apps,events", "-n", namespace, check=False).stdout)
        print(op.log_tail(80))
        raise
    finally:
        op.stop()
