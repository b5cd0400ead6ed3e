"""Serving on the real cluster, Prometheus and MLflow: first rollout, canary to 100%, rollback, operator restart."""

from __future__ import annotations

import asyncio
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from mlops_operator.kubeapi import Kube as KubeApi
from mlops_operator.kubeapi import connection_from_env
from mlops_operator.traffic import TrafficReport, endpoints, send_traffic
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import make_pipeline

from tests.fixtures.models import register_model

from .conftest import Kube, OperatorProcess, condition, wait_for

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def iris_frame() -> tuple[pd.DataFrame, np.ndarray]:
    data = load_iris()
    return pd.DataFrame(data.data, columns=COLUMNS), data.target


def fitted_forest(n_estimators: int, seed: int) -> RandomForestClassifier:
    frame, target = iris_frame()
    return RandomForestClassifier(n_estimators=n_estimators, random_state=seed).fit(frame.to_numpy(), target)


def broken_forest() -> Any:
    """A model that loads (skops, no code) but fails on every request: fitted on 10 columns, served with 4."""
    frame, target = iris_frame()
    wide = np.hstack([frame.to_numpy(), np.zeros((len(frame), 6))])
    return make_pipeline(ColumnTransformer([("iris", "passthrough", [0, 1, 2, 3])]), fitted_forest(5, 2)).fit(
        wide, target
    )


def register(kube: Kube, model_name: str, fitted: Any, owner: str | None) -> int:
    """Log and register a fitted model in the cluster's MLflow as the worker does (skops, the files' digest);
    a model created here gets `owner` as its owner namespace (None: unowned, as if created outside)."""
    import mlflow
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    frame, _ = iris_frame()
    client = mlflow.MlflowClient(kube.mlflow_url, registry_uri=kube.mlflow_url)
    experiment = client.get_experiment_by_name("serving-tests")
    experiment_id = experiment.experiment_id if experiment else client.create_experiment("serving-tests")
    with _use_tracking_uri(kube.mlflow_url):  # log_model's fluent internals; restored afterwards
        # The signature's output from zeros: the broken model cannot predict, and the others give class ids.
        outputs = np.zeros(len(frame), dtype=np.int64)
        return register_model(client, experiment_id, model_name, fitted, frame, owner=owner, outputs=outputs)


def set_alias(kube: Kube, model_name: str, version: int) -> None:
    response = httpx.post(
        f"{kube.mlflow_url}/api/2.0/mlflow/registered-models/alias",
        json={"name": model_name, "alias": "production", "version": str(version)},
    )
    response.raise_for_status()


def alias_version(kube: Kube, model_name: str) -> int:
    response = httpx.get(
        f"{kube.mlflow_url}/api/2.0/mlflow/registered-models/alias", params={"name": model_name, "alias": "production"}
    )
    return int(response.json()["model_version"]["version"])


def deployment_manifest(model_name: str, analysis_interval: str = "5s") -> str:
    return textwrap.dedent(
        f"""
        apiVersion: mlops.dev/v1alpha1
        kind: Deployment
        metadata: {{name: iris}}
        spec:
          model: {{registeredModel: {model_name}, alias: production}}
          replicas: 2
          strategy:
            canary:
              steps: [{{weight: 10, pause: 10s}}, {{weight: 50, pause: 10s}}, {{weight: 100}}]
              analysis:
                interval: {analysis_interval}
                failureLimit: 2
                metrics:
                  - {{name: error-rate, builtin: errorRate, max: 0.05}}
                  - {{name: latency-p99, builtin: latencyP99Seconds, max: 2.0}}
        """
    )


def model_version_manifest(model_name: str, version: int) -> str:
    return textwrap.dedent(
        f"""
        apiVersion: mlops.dev/v1alpha1
        kind: ModelVersion
        metadata: {{name: {model_name}-{version}}}
        spec:
          registeredModel: {model_name}
          version: {version}
          promotion: {{alias: production, mode: auto}}
        """
    )


def status(kube: Kube, namespace: str) -> dict[str, Any]:
    return kube.json("get", "mldeploy/iris", "-n", namespace).get("status", {})


def wait_status(kube: Kube, namespace: str, what: str, check: Any, op: OperatorProcess, timeout: float = 120) -> dict:
    def probe() -> dict | None:
        assert op.running(), f"the operator exited:\n{op.log_tail()}"
        current = status(kube, namespace)
        return current if check(current) else None

    try:
        return wait_for(what, probe, timeout=timeout, interval=0.5)
    except AssertionError:
        print(kube.run("get", "mlops,deploy,pods,endpointslices", "-n", namespace, "-o", "wide", check=False).stdout)
        print(status(kube, namespace))
        print(op.log_tail(120))
        raise


class Traffic:
    """Prediction traffic in a background thread for the length of a test."""

    def __init__(self, namespace: str, data: Path, duration: float = 240) -> None:
        self.report: TrafficReport | None = None
        self.thread = threading.Thread(
            target=lambda: setattr(
                self,
                "report",
                asyncio.run(send_traffic(namespace, "iris", data, rate=20, duration=duration, drop={"species"})),
            ),
            daemon=True,
        )

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        pass  # the thread ends with its duration; the test does not wait for it


@pytest.fixture
def iris_csv(tmp_path: Path) -> Path:
    frame, target = iris_frame()
    frame["species"] = target
    frame.to_csv(tmp_path / "iris.csv", index=False)
    return tmp_path / "iris.csv"


@pytest.fixture
def traffic_env(crds_installed: Kube, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("KUBECONFIG", str(crds_installed.kubeconfig))
    yield


def served_versions(kube: Kube, namespace: str) -> dict[str, int]:
    pods = kube.json("get", "pods", "-n", namespace, "-l", "mlops.dev/deployment=iris")["items"]
    return {
        p["metadata"]["name"]: int(p["metadata"]["labels"]["mlops.dev/model-version"])
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
        and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
    }


def test_first_rollout_then_canary_to_100_percent(
    crds_installed: Kube, namespace: str, operator_process: OperatorProcess, iris_csv: Path, traffic_env: None
) -> None:
    kube, model = crds_installed, f"serve-{namespace}"
    v1 = register(kube, model, fitted_forest(20, 0), namespace)
    set_alias(kube, model, v1)
    kube.apply(deployment_manifest(model), namespace)
    wait_status(kube, namespace, "version 1 to serve", lambda s: s.get("phase") == "Healthy", operator_process)
    assert set(served_versions(kube, namespace).values()) == {v1}
    # The server answers both protocols with the model's predictions.
    address = asyncio.run(endpoints(KubeApi(connection_from_env()), namespace, "iris"))[0]
    frame, _ = iris_frame()
    rows = frame.iloc[[0, 60, 120]]
    oip = httpx.post(
        f"http://{address}/v2/models/{model}/infer",
        json={"inputs": [{"name": c, "shape": [3], "datatype": "FP64", "data": rows[c].tolist()} for c in COLUMNS]},
    )
    assert oip.status_code == 200, oip.text
    assert oip.json()["outputs"][0]["data"] == [0, 1, 2]
    split = httpx.post(
        f"http://{address}/invocations",
        json={"dataframe_split": {"columns": COLUMNS, "data": rows.to_numpy().tolist()}},
    )
    assert split.status_code == 200 and split.json()["predictions"] == [0, 1, 2], split.text
    bad = httpx.post(f"http://{address}/invocations", json={"dataframe_split": {"columns": ["x"], "data": [[1]]}})
    assert 400 <= bad.status_code < 500 and "sepal_length" in bad.text

    v2 = register(kube, model, fitted_forest(30, 1), namespace)
    with Traffic(namespace, iris_csv):
        promoted_at = time.monotonic()
        kube.apply(model_version_manifest(model, v2), namespace)
        weights: list[int] = []

        def at_100(s: dict) -> bool:
            if s.get("canaryWeight") and (not weights or weights[-1] != s["canaryWeight"]):
                weights.append(s["canaryWeight"])
            return s.get("stableVersion") == v2 and s.get("canaryVersion") is None

        wait_status(kube, namespace, "version 2 to be stable", at_100, operator_process, timeout=240)
        seconds = time.monotonic() - promoted_at
    print(f"\npromotion -> 100%: {seconds:.1f}s (weights seen {weights})")
    assert weights == [10, 50, 100] or weights[-2:] == [50, 100], weights
    # The alias move is an outside effect carried out after the status write that records it as intent.
    wait_for("the alias to name version 2", lambda: alias_version(kube, model) == v2, timeout=30)
    mv = wait_for(
        "ModelVersion 2 Promoted",
        lambda: (
            (o := kube.json("get", f"modelversion/{model}-{v2}", "-n", namespace))["status"].get("phase") == "Promoted"
            and o
        ),
        timeout=30,
    )
    assert condition(mv, "Ready")["status"] == "True"
    final = wait_status(
        kube, namespace, "Healthy on version 2", lambda s: s.get("phase") == "Healthy", operator_process
    )
    assert [h["version"] for h in final["history"]] == [v1, v2] and final["history"][0]["to"]
    kube.run("wait", "--for=condition=Ready", "mldeploy/iris", "-n", namespace, "--timeout=10s")
    diff = kube.run("diff", "-n", namespace, "-f", "-", input_text=deployment_manifest(model), check=False)
    assert diff.returncode == 0, f"the operator changed what the user applied:\n{diff.stdout}{diff.stderr}"
    wait_for("every pod to serve version 2", lambda: set(served_versions(kube, namespace).values()) == {v2}, timeout=60)
    assert operator_process.metric("mlops_operator_canary_steps_total") == 3
    assert operator_process.metric("mlops_operator_promotions_total", via="canary") == 1


def test_failing_canary_is_rolled_back_and_a_restart_resumes_mid_canary(
    crds_installed: Kube, namespace: str, operator_process: OperatorProcess, iris_csv: Path, traffic_env: None
) -> None:
    kube, model = crds_installed, f"broken-{namespace}"
    v1 = register(kube, model, fitted_forest(20, 0), namespace)
    set_alias(kube, model, v1)
    kube.apply(deployment_manifest(model), namespace)
    wait_status(kube, namespace, "version 1 to serve", lambda s: s.get("phase") == "Healthy", operator_process)
    v2 = register(kube, model, broken_forest(), namespace)
    with Traffic(namespace, iris_csv):
        kube.apply(model_version_manifest(model, v2), namespace)
        wait_status(kube, namespace, "the canary to start", lambda s: s.get("canaryVersion") == v2, operator_process)
        # Kill the operator mid-canary: the restarted one must continue this canary, not start it again.
        operator_process.kill()
        time.sleep(3)
        operator_process.start()
        steps_seen: set[tuple[int, str]] = set()

        def rolled_back(s: dict) -> bool:
            if s.get("canaryVersion") is not None:
                steps_seen.add((s["step"], s["stepStartedAt"]))
            return s.get("phase") == "RolledBack"

        final = wait_status(kube, namespace, "the rollback", rolled_back, operator_process, timeout=180)
        verdict_at = time.monotonic()
    assert final["stableVersion"] == v1 and final.get("canaryVersion") is None and final["rolledBackVersion"] == v2
    rolled = next(c for c in final["conditions"] if c["type"] == "RolledBack")
    assert rolled["status"] == "True" and "error-rate" in rolled["message"] and "max 0.05" in rolled["message"]
    failed = [r for r in final["analysis"] if r.get("passed") is False]
    assert failed and failed[0]["value"] > failed[0]["threshold"]
    # The ModelVersion reads the rollback from the Deployment's status (each controller writes only its own kind).
    mv = wait_for(
        "ModelVersion 2 RolledBack",
        lambda: (
            (o := kube.json("get", f"modelversion/{model}-{v2}", "-n", namespace))["status"].get("phase")
            == "RolledBack"
            and o
        ),
        timeout=20,
    )
    assert "error-rate" in mv["status"]["message"] and "deployments.mlops.dev/iris" in mv["status"]["message"]
    assert alias_version(kube, model) == v1
    wait_for(
        "all ready pods to serve version 1 again",
        lambda: (served := served_versions(kube, namespace)) and set(served.values()) == {v1} and len(served) == 2,
        timeout=60,
    )
    print(f"\nrollback verdict -> all pods on stable: {time.monotonic() - verdict_at:.1f}s")
    started = {started for step, started in steps_seen if step == 0}
    assert len(started) == 1, f"the restarted operator started the canary again: {sorted(steps_seen)}"
    events = kube.run("get", "events", "-n", namespace, "-o", "jsonpath={.items[*].reason}").stdout.split()
    assert events.count("CanaryStarted") <= 1 and "RolledBack" in events
    # The chart's alert rules, loaded by the cluster's Prometheus, which scrapes this test's operator.
    alert = wait_for(
        "the MLOpsCanaryRolledBack alert to fire",
        lambda: firing(kube, "MLOpsCanaryRolledBack", namespace=namespace, deployment="iris"),
        timeout=60,
        interval=2,
    )
    rolled_back_at = datetime.fromisoformat(final["rollbacks"][-1]["at"])
    active_at = datetime.fromisoformat(alert[0]["activeAt"][:26].rstrip("Z") + "+00:00")
    print(f"rollback (status.rollbacks[-1].at) -> alert active: {(active_at - rolled_back_at).total_seconds():.1f}s")
    assert alert[0]["labels"]["severity"] == "warning" and "runbook" in alert[0]["annotations"], alert


def firing(kube: Kube, alertname: str, **labels: str) -> list[dict[str, Any]]:
    """The firing alerts of that name and labels, from Prometheus' /api/v1/alerts."""
    response = httpx.get(f"{kube.prometheus_url}/api/v1/alerts", timeout=5)
    response.raise_for_status()
    return [
        a
        for a in response.json()["data"]["alerts"]
        if a["state"] == "firing"
        and a["labels"].get("alertname") == alertname
        and all(a["labels"].get(k) == v for k, v in labels.items())
    ]
