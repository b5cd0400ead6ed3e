"""`mlops-operator demo`: the whole loop on the local cluster, with a live progress view.

Dataset -> validation Job -> TrainingRun -> training Job -> ModelVersion -> gates -> Deployment serves it ->
prediction traffic -> drift measured -> the data and the traffic shift -> drift detected -> a retraining
TrainingRun -> a new ModelVersion passes its gates -> canary 10% -> 50% -> 100% -> drift back to normal ->
labels sent back -> live accuracy -> the concept changes (inputs unchanged) -> PerformanceDegraded -> a retraining
TrainingRun on the newly labelled data -> shadow step -> canary judged on live accuracy -> accuracy back up.
"""

from __future__ import annotations

import copy
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from .demoloop import LIVE_ACCURACY_METRIC, LoopSettings, run_loop, summary_lines
from .localcluster.binaries import ensure_binaries
from .localcluster.config import ClusterConfig

Obj = dict[str, Any]
REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "mlops-demo"
DEMO_REPLICAS = 2
# Drift settings sized for a demo: a one-minute window checked every 15 s (production: 30m / 1m).
DEMO_DRIFT = {"method": "psi", "window": "1m", "interval": "15s", "minSamples": 1000, "consecutiveWindows": 2}
# Live accuracy over the last minute's labels, checked every 15 s; degraded after 2 checks below 0.92. At 40
# labels/s the window holds ~2,400; the concept change takes the old model to ~0.83.
DEMO_PERFORMANCE = {
    "metric": "accuracy",
    "min": 0.92,
    "window": "1m",
    "minLabels": 200,
    "interval": "15s",
    "consecutiveWindows": 2,
}
# Half the live requests mirrored for 20 s. The retrained model is meant to answer differently after a concept
# change (~1 row in 6), so the bar is 75 % agreement: it stops a broken candidate, not a corrected one. The
# shadow's latency bound is loose because a fresh pod on a 2-core node sharing the control plane is slow to warm.
DEMO_SHADOW = {"duration": "20s", "minRequests": 100, "sample": 0.5, "minAgreement": 0.75, "maxLatencyRatio": 4.0}
# Non-inferiority on live accuracy at the 10 % and 50 % steps: at most 5 points below the stable track.
DEMO_LIVE_ACCURACY = {
    "name": LIVE_ACCURACY_METRIC,
    "builtin": "liveAccuracy",
    "quality": {"maxDegradation": 0.05, "significance": 0.05, "minLabels": 100},
}


def demo_manifests(
    data_uri: str, registered_model: str = "iris-classifier", latency_p99_max: float | None = None
) -> list[Obj]:
    """The iris example (Dataset, TrainingRun, Deployment) pointed at local data, with demo-sized timings;
    `latency_p99_max` replaces the example's canary latency bound (seconds)."""
    dataset = yaml.safe_load((REPO / "examples" / "iris" / "dataset.yaml").read_text())
    dataset["spec"]["source"]["uri"] = data_uri
    training = yaml.safe_load((REPO / "examples" / "iris" / "trainingrun.yaml").read_text())
    # Retrained on shifted data, the new model is scored on a different test set than the old one, so
    # an improvement gate would compare apples with pears: the demo keeps the absolute floor only.
    training["spec"]["promotion"]["gates"] = [{"metric": "accuracy", "min": 0.9}]
    training["spec"]["resources"] = {"requests": {"cpu": "500m", "memory": "512Mi"}}
    training["spec"]["registeredModel"] = registered_model
    deployment = yaml.safe_load((REPO / "examples" / "iris" / "deployment.yaml").read_text())
    spec = deployment["spec"]
    spec["model"]["registeredModel"] = registered_model
    spec["replicas"] = DEMO_REPLICAS  # two model servers are plenty on a laptop-sized node
    canary = spec["strategy"]["canary"]
    canary["steps"] = [{"weight": 10, "pause": "10s"}, {"weight": 50, "pause": "10s"}, {"weight": 100}]
    canary["analysis"]["interval"] = "10s"
    if latency_p99_max is not None:
        for metric in canary["analysis"]["metrics"]:
            if metric.get("builtin") == "latencyP99Seconds":
                metric["max"] = latency_p99_max
    spec["monitoring"] = {"drift": dict(DEMO_DRIFT)}
    # Long enough that drift persisting over several checks makes one run, short enough for the quality stage's.
    spec["retraining"] = {"enabled": True, "cooldown": "2m"}
    return [dataset, training, deployment]


def with_quality_signals(deployment: Obj) -> Obj:
    """The Deployment judged on labels too: performance monitoring, a shadow step, a live-accuracy canary metric."""
    judged = copy.deepcopy(deployment)
    spec = judged["spec"]
    spec["monitoring"]["performance"] = dict(DEMO_PERFORMANCE)
    canary = spec["strategy"]["canary"]
    canary["shadow"] = dict(DEMO_SHADOW)
    canary["analysis"]["metrics"].append(copy.deepcopy(DEMO_LIVE_ACCURACY))
    return judged


class Kubectl:
    """The kubectl built for the local cluster."""

    def __init__(self, kubeconfig: Path) -> None:
        self.path, self.env = ensure_binaries() / "kubectl", {**os.environ, "KUBECONFIG": str(kubeconfig)}

    def __call__(self, *args: str, input_text: str | None = None) -> str:
        result = subprocess.run(
            [str(self.path), *args], input=input_text, capture_output=True, text=True, env=self.env, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout


def run_demo(cfg: ClusterConfig, timeout: float = 600, out: Callable[[str], None] = print) -> int:
    """Run the whole loop; 0 only when both retrained versions served at 100%, drift back to normal and live
    accuracy healthy again."""
    from .worker.sample_data import write_sample

    kubectl = Kubectl(cfg.kubeconfig)
    out("==> installing the CRDs")
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    kubectl("wait", "--for=condition=Established", "crd", "-l", "app.kubernetes.io/part-of=mlops-operator")
    data = (cfg.data_dir / "demo" / "iris.csv").resolve()  # readable in pods run from images
    write_sample("iris", data)
    out(f"==> wrote the iris data set to {data}")
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    kubectl("apply", "-f", "-", input_text=yaml.safe_dump(namespace))
    # A fresh start: earlier runs' objects (and their servers, by garbage collection) go, and so does the
    # alias an earlier run left in the local MLflow, so the first version is served directly.
    kubectl("delete", "deployments.mlops.dev,trainingruns,datasets,modelversions", "--all", "-n", NAMESPACE)
    kubectl("delete", "secret", "mlops-feedback", "-n", NAMESPACE, "--ignore-not-found")
    _forget_alias(cfg.mlflow_url, "iris-classifier", "production")
    settings = LoopSettings(
        kubeconfig=cfg.kubeconfig,
        mlflow_url=cfg.mlflow_url,
        prometheus_url=cfg.prometheus_url,
        namespace=NAMESPACE,
        data=data,
        log_file=cfg.logs_dir / "operator-demo.log",
        timeout=timeout,
    )
    out(f"==> operator log: {settings.log_file}; applying the iris Dataset, TrainingRun and Deployment")

    def apply(manifest: Obj) -> None:
        kubectl("apply", "-n", NAMESPACE, "-f", "-", input_text=yaml.safe_dump(manifest))

    manifests = demo_manifests(f"file://{data}")
    result = run_loop(settings, manifests, apply, out, quality_deployment=with_quality_signals(manifests[-1]))
    out("")
    for line in summary_lines(result):
        out(line)
    _where_to_look(cfg, out)
    return 0 if result.ok else 1


def _forget_alias(mlflow_url: str, model: str, alias: str) -> None:
    """Delete an alias in the demo's own MLflow (absent is fine)."""
    import httpx

    # MLflow reads a DELETE's parameters from a JSON body, not the query string.
    httpx.request(
        "DELETE",
        f"{mlflow_url}/api/2.0/mlflow/registered-models/alias",
        json={"name": model, "alias": alias},
        timeout=10,
    )


def _where_to_look(cfg: ClusterConfig, out: Callable[[str], None]) -> None:
    bin_dir = ensure_binaries()
    out("Where to look:")
    out(f"  export KUBECONFIG={cfg.kubeconfig.resolve()} PATH={bin_dir}:$PATH")
    out(f"  kubectl get mlops -n {NAMESPACE}            # every mlops.dev object")
    out(f"  kubectl get mldeploy iris -n {NAMESPACE} -o jsonpath='{{.status.drift}}'")
    out(f"  kubectl get mldeploy iris -n {NAMESPACE} -o jsonpath='{{.status.performance}}'")
    out(f"  kubectl get trainingruns -n {NAMESPACE} -L mlops.dev/triggered-by")
    out(f"  kubectl get events -n {NAMESPACE} --sort-by=.lastTimestamp")
    out(f"  MLflow UI: {cfg.mlflow_url}  (experiments mlops-datasets, mlops-training; model iris-classifier)")
    out(
        f"  Prometheus: {cfg.prometheus_url}  (mlops_server_feature_bin_total, mlops_operator_drift_score,"
        " mlops_server_feedback_total, mlops_server_shadow_agreed_rows_total)"
    )
    out(f"  operator log: {cfg.logs_dir / 'operator-demo.log'}")
