"""spec.pod on the real cluster: check Job, training Job and server tracks carry the placement, and their pods run.

The placement is real for this cluster: a nodeSelector and a required node affinity on the node's own labels, a
toleration, a PriorityClass and a ServiceAccount that exist (the API server's Priority and ServiceAccount
admission resolve them when the pods are created), a ConfigMap volume and env from a ConfigMap key; the chart's
defaults come through MLOPS_WORKLOAD_POD as the Helm chart passes them.
"""

from __future__ import annotations

import json
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import Kube, OperatorProcess, wait_for
from .test_training import iris_dataset, mlflow_versions, sample_data, training_run, wait_phase


@pytest.fixture
def priority_class(crds_installed: Kube) -> Iterator[str]:
    name = f"mlops-test-{uuid.uuid4().hex[:8]}"
    crds_installed.apply(
        f"apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {{name: {name}}}\nvalue: 1000\n", "default"
    )
    yield name
    crds_installed.run("delete", "priorityclass", name, "--ignore-not-found", check=False)


def _node(kube: Kube) -> dict[str, Any]:
    (node,) = kube.json("get", "nodes")["items"]
    return dict(node)


def _pod_block(node_name: str) -> str:
    return textwrap.indent(
        textwrap.dedent(
            f"""
            pod:
              nodeSelector: {{kubernetes.io/hostname: {node_name}}}
              tolerations: [{{key: mlops.dev/dedicated, operator: Exists, effect: NoSchedule}}]
              affinity:
                nodeAffinity:
                  requiredDuringSchedulingIgnoredDuringExecution:
                    nodeSelectorTerms:
                      - matchExpressions: [{{key: kubernetes.io/hostname, operator: In, values: [{node_name}]}}]
              priorityClassName: %(priority)s
              serviceAccountName: ml-team
              imagePullSecrets: [{{name: team-registry}}]
              env:
                - {{name: TEAM, valueFrom: {{configMapKeyRef: {{name: team, key: name}}}}}}
              volumes: [{{name: team, configMap: {{name: team}}}}]
              volumeMounts: [{{name: team, mountPath: /mnt/team, readOnly: true}}]
            """
        ),
        "  ",
    )


def _assert_placed(pod: dict[str, Any], node_name: str, priority: str) -> None:
    assert pod["nodeSelector"] == {"kubernetes.io/hostname": node_name, "kubernetes.io/os": "linux"}
    assert {"key": "mlops.dev/dedicated", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert (pod["priorityClassName"], pod["serviceAccountName"]) == (priority, "ml-team")
    assert pod["imagePullSecrets"] == [{"name": "platform-registry"}, {"name": "team-registry"}]
    assert pod["automountServiceAccountToken"] is False
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["TZ"]["value"] == "UTC" and env["TEAM"]["valueFrom"]["configMapKeyRef"]["name"] == "team"
    assert {"name": "team", "mountPath": "/mnt/team", "readOnly": True} in pod["containers"][0]["volumeMounts"]


def _pods_of(kube: Kube, namespace: str, selector: str) -> list[dict[str, Any]]:
    return list(kube.json("get", "pods", "-n", namespace, "-l", selector)["items"])


def test_every_workload_carries_its_placement_and_runs(
    crds_installed: Kube, namespace: str, priority_class: str, tmp_path: Path
) -> None:
    kube = crds_installed
    node = _node(kube)
    node_name = node["metadata"]["name"]
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == node_name
    kube.run("create", "serviceaccount", "ml-team", "-n", namespace)
    kube.run("create", "configmap", "team", "-n", namespace, "--from-literal=name=ml")
    chart = {
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "imagePullSecrets": [{"name": "platform-registry"}],
        "env": [{"name": "TZ", "value": "UTC"}],
    }
    assert node["metadata"]["labels"]["kubernetes.io/os"] == "linux"
    op = OperatorProcess(
        kube, namespace, tmp_path / "operator.log", extra_env={"MLOPS_WORKLOAD_POD": json.dumps(chart)}
    ).start()
    try:
        pod_block = _pod_block(node_name) % {"priority": priority_class}
        csv = sample_data("iris", tmp_path / "iris.csv")
        model = f"placed-{namespace}"
        kube.apply(iris_dataset(f"file://{csv}").rstrip() + pod_block, namespace)
        resources = "\n  resources: {limits: {cpu: '2', memory: 2Gi}}"
        kube.apply(training_run("train", model).rstrip() + resources + pod_block, namespace)
        wait_phase(kube, "trainingrun/train", namespace, {"Succeeded"}, op, timeout=240)
        check_job = kube.json("get", "jobs", "-n", namespace, "-l", "app.kubernetes.io/component=worker-validate")[
            "items"
        ][0]
        train_job = kube.json("get", "jobs", "-n", namespace, "-l", "app.kubernetes.io/component=worker-train")[
            "items"
        ][0]
        for job in (check_job, train_job):
            _assert_placed(job["spec"]["template"]["spec"], node_name, priority_class)
            (pod,) = _pods_of(kube, namespace, f"job-name={job['metadata']['name']}")
            assert pod["spec"]["nodeName"] == node_name and pod["status"]["phase"] == "Succeeded"
            # Resolved by the API server's Priority admission from the PriorityClass that exists.
            assert pod["spec"]["priority"] == 1000 and pod["spec"]["serviceAccountName"] == "ml-team"

        (version,) = mlflow_versions(kube, model)
        kube.apply(
            textwrap.dedent(
                f"""
                apiVersion: mlops.dev/v1alpha1
                kind: Deployment
                metadata: {{name: placed}}
                spec:
                  model: {{registeredModel: {model}, version: {version}}}
                  replicas: 1
                """
            ).rstrip()
            + pod_block,
            namespace,
        )

        def stable_ready() -> dict[str, Any] | None:
            assert op.running(), op.log_tail()
            found = kube.run("get", "deployment.apps", "placed-stable", "-n", namespace, "-o", "json", check=False)
            if found.returncode != 0:
                return None
            track = json.loads(found.stdout)
            return track if (track.get("status") or {}).get("readyReplicas") == 1 else None

        track = wait_for("the placed stable track to be ready", stable_ready, timeout=120)
        _assert_placed(track["spec"]["template"]["spec"], node_name, priority_class)
        canary = kube.json("get", "deployment.apps", "placed-canary", "-n", namespace)
        _assert_placed(canary["spec"]["template"]["spec"], node_name, priority_class)
        (server_pod,) = _pods_of(kube, namespace, "mlops.dev/deployment=placed,mlops.dev/track=stable")
        assert server_pod["spec"]["nodeName"] == node_name and server_pod["spec"]["priority"] == 1000

        # A PriorityClass that does not exist: the API server refuses the pods, and the Deployment says so.
        kube.apply(
            textwrap.dedent(
                f"""
                apiVersion: mlops.dev/v1alpha1
                kind: Deployment
                metadata: {{name: unplaced}}
                spec:
                  model: {{registeredModel: {model}, version: {version}}}
                  replicas: 1
                  pod: {{priorityClassName: no-such-class}}
                """
            ),
            namespace,
        )

        def pods_not_created() -> dict[str, Any] | None:
            body = kube.json("get", "mldeploy", "unplaced", "-n", namespace)
            found = [c for c in (body.get("status") or {}).get("conditions") or [] if c["type"] == "Degraded"]
            return found[0] if found and found[0]["reason"] == "PodsNotCreated" else None

        degraded = wait_for("Degraded PodsNotCreated", pods_not_created, timeout=60)
        assert degraded["status"] == "True" and "no-such-class" in degraded["message"], degraded
        assert degraded["message"].startswith("stable track: "), degraded
    finally:
        op.stop()
        print(f"--- operator log (tail) ---\n{op.log_tail()}")


def test_a_check_waits_for_the_service_account_its_pods_name(
    operator_process: OperatorProcess, namespace: str, tmp_path: Path
) -> None:
    kube, op = operator_process.kube, operator_process
    csv = sample_data("iris", tmp_path / "iris.csv")
    kube.apply(iris_dataset(f"file://{csv}").rstrip() + "\n  pod: {serviceAccountName: late-team}\n", namespace)

    def waiting() -> dict[str, Any] | None:
        assert op.running(), op.log_tail()
        body = kube.json("get", "mlds", "iris", "-n", namespace)
        ready = [c for c in (body.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"]
        return ready[0] if ready and ready[0]["reason"] == "PodRefsMissing" else None

    ready = wait_for("Ready=False PodRefsMissing", waiting, timeout=60)
    assert ready["status"] == "False" and f"no ServiceAccount late-team in {namespace}" in ready["message"]
    assert not kube.json("get", "jobs", "-n", namespace)["items"], "a Job was created for pods that cannot exist"
    events = kube.json("get", "events", "-n", namespace, "--field-selector", "reason=PodRefsMissing")["items"]
    assert events and events[0]["type"] == "Warning"
    kube.run("create", "serviceaccount", "late-team", "-n", namespace)
    # Looked at again within 30 s (a ServiceAccount sends no event the operator watches), then validated.
    wait_phase(kube, "dataset/iris", namespace, {"Ready"}, op, timeout=120)
    (job,) = kube.json("get", "jobs", "-n", namespace)["items"]
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "late-team"
