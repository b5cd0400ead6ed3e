"""`mlops-operator demo`: the iris pipeline on the local cluster, with a live progress table.

Dataset -> validation Job -> TrainingRun -> training Job -> ModelVersion -> gates -> Deployment rolls the
approved version out -> MLflow alias moves -> prediction traffic.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .localcluster.binaries import ensure_binaries
from .localcluster.config import ClusterConfig
from .localcluster.kubeclient import ApiError, KubeClient
from .localcluster.kubeconfig import read_credentials

Obj = dict[str, Any]
REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "mlops-demo"
KINDS = (
    ("Dataset", "datasets"),
    ("TrainingRun", "trainingruns"),
    ("ModelVersion", "modelversions"),
    ("Deployment", "deployments"),
)
DEMO_REPLICAS = 2


@dataclass
class Row:
    """One line of the progress table."""

    kind: str
    name: str
    phase: str
    figures: str


def figures_of(kind: str, obj: Obj) -> str:
    """The key figures of an object, as the table shows them."""
    status = obj.get("status") or {}
    if kind == "Dataset":
        parts = [f"rows={status['rows']}" if status.get("rows") else "", (status.get("version") or "")[:19]]
        if status.get("violations"):
            parts.append(f"{len(status['violations'])} violation(s)")
        return " ".join(p for p in parts if p)
    if kind == "TrainingRun":
        metrics = status.get("metrics") or {}
        figures = " ".join(f"{k}={v:.3f}" for k, v in sorted(metrics.items()))
        return figures or (status.get("jobName") and f"job={status['jobName']}") or ""
    if kind == "ModelVersion":
        spec = obj.get("spec") or {}
        gates = status.get("gateResults") or []
        passed = sum(1 for g in gates if g.get("passed"))
        alias = (spec.get("promotion") or {}).get("alias", "production")
        where = f" {alias}" if status.get("phase") == "Promoted" else ""
        return f"v{spec.get('version')} gates {passed}/{len(gates)}{where}"
    if kind == "Deployment":
        parts = [f"stable=v{status['stableVersion']}" if status.get("stableVersion") else ""]
        if status.get("canaryVersion"):
            parts.append(f"canary=v{status['canaryVersion']}@{status.get('canaryWeight')}%")
        parts.append(f"ready={status.get('readyReplicas', 0)}/{(obj.get('spec') or {}).get('replicas')}")
        return " ".join(p for p in parts if p)
    if kind == "Job":
        s = obj.get("status") or {}
        return f"active={s.get('active', 0)} succeeded={s.get('succeeded', 0)} failed={s.get('failed', 0)}"
    return ""


def render_table(rows: list[Row], elapsed: float) -> str:
    """The progress table: kind, name, phase and key figures, with the elapsed time."""
    lines = [f"{'KIND':<13} {'NAME':<28} {'PHASE':<11} FIGURES"]
    lines += [f"{r.kind:<13} {r.name[:28]:<28} {r.phase:<11} {r.figures}" for r in rows]
    lines.append(f"elapsed {elapsed:5.1f}s")
    return "\n".join(lines)


def collect_rows(client: KubeClient, namespace: str) -> list[Row]:
    """Every mlops object and worker Job in the namespace."""
    rows = []
    for kind, plural in KINDS:
        items = client.get(f"/apis/mlops.dev/v1alpha1/namespaces/{namespace}/{plural}").get("items", [])
        for obj in sorted(items, key=lambda o: o["metadata"]["creationTimestamp"]):
            phase = (obj.get("status") or {}).get("phase") or "-"
            rows.append(Row(kind, obj["metadata"]["name"], phase, figures_of(kind, obj)))
    jobs = client.get(f"/apis/batch/v1/namespaces/{namespace}/jobs").get("items", [])
    for job in sorted(jobs, key=lambda o: o["metadata"]["creationTimestamp"]):
        conditions = {c["type"] for c in (job.get("status") or {}).get("conditions") or [] if c["status"] == "True"}
        phase = "Complete" if "Complete" in conditions else "Failed" if "Failed" in conditions else "Running"
        rows.append(Row("Job", job["metadata"]["name"], phase, figures_of("Job", job)))
    return rows


def demo_manifests(data_uri: str) -> list[Obj]:
    """The iris example (Dataset, TrainingRun, Deployment), the Dataset pointed at the local copy of the data."""
    dataset = yaml.safe_load((REPO / "examples" / "iris" / "dataset.yaml").read_text())
    dataset["spec"]["source"]["uri"] = data_uri
    training = yaml.safe_load((REPO / "examples" / "iris" / "trainingrun.yaml").read_text())
    deployment = yaml.safe_load((REPO / "examples" / "iris" / "deployment.yaml").read_text())
    deployment["spec"]["replicas"] = DEMO_REPLICAS  # two model servers are plenty on a laptop-sized node
    # Short pauses: a re-run trains a new version, and its canary should finish while you watch.
    canary = deployment["spec"]["strategy"]["canary"]
    canary["steps"] = [{"weight": 10, "pause": "10s"}, {"weight": 50, "pause": "10s"}, {"weight": 100}]
    canary["analysis"]["interval"] = "10s"
    return [dataset, training, deployment]


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
    """Run the pipeline to a promoted model; 0 when it got there, 1 otherwise."""
    from .worker.sample_data import write_sample

    kubectl = Kubectl(cfg.kubeconfig)
    out("==> installing the CRDs")
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    kubectl("wait", "--for=condition=Established", "crd", "-l", "app.kubernetes.io/part-of=mlops-operator")
    data = (cfg.state_dir / "demo" / "iris.csv").resolve()
    data.parent.mkdir(parents=True, exist_ok=True)
    write_sample("iris", data)
    out(f"==> wrote the iris data set to {data}")
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    kubectl("apply", "-f", "-", input_text=yaml.safe_dump(namespace))
    log_file = cfg.logs_dir / "operator-demo.log"
    operator = _start_operator(cfg, log_file)
    try:
        out(f"==> operator running (log: {log_file}); applying the iris Dataset and TrainingRun")
        kubectl("delete", "deployments.mlops.dev,trainingruns,datasets,modelversions", "--all", "-n", NAMESPACE)
        for manifest in demo_manifests(f"file://{data}"):
            kubectl("apply", "-n", NAMESPACE, "-f", "-", input_text=yaml.safe_dump(manifest))
        code = _follow(cfg, operator, timeout, out)
        if code == 0:
            _send_traffic(cfg, data, out)
        return code
    finally:
        operator.terminate()
        operator.wait(timeout=30)


def _start_operator(cfg: ClusterConfig, log_file: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KUBECONFIG": str(cfg.kubeconfig), "MLFLOW_TRACKING_URI": cfg.mlflow_url}
    argv = [
        sys.executable,
        "-m",
        "mlops_operator",
        "run",
        "-n",
        NAMESPACE,
        "--liveness",
        "http://127.0.0.1:18081/healthz",
    ]
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)


def _follow(cfg: ClusterConfig, operator: subprocess.Popen[bytes], timeout: float, out: Callable[[str], None]) -> int:
    client = KubeClient(read_credentials(cfg.kubeconfig), timeout=10)
    started, shown, tty = time.monotonic(), "", sys.stdout.isatty()
    try:
        while time.monotonic() - started < timeout:
            if operator.poll() is not None:
                out(f"the operator exited with {operator.returncode}; see {cfg.logs_dir / 'operator-demo.log'}")
                return 1
            try:
                rows = collect_rows(client, NAMESPACE)
            except ApiError as error:
                out(f"(API error: {error})")
                rows = []
            table = render_table(rows, time.monotonic() - started)
            body = table.rsplit("\n", 1)[0]
            if tty:
                out(("\033[H\033[2J" if shown else "") + table)
            elif body != shown.rsplit("\n", 1)[0]:
                out(table + "\n")
            shown = table
            verdict = _verdict(rows)
            if verdict is not None:
                _summary(cfg, rows, time.monotonic() - started, verdict, out)
                return 0 if verdict else 1
            time.sleep(1.0)
        out(f"the pipeline did not finish within {timeout:.0f}s")
        return 1
    finally:
        client.close()


def _verdict(rows: list[Row]) -> bool | None:
    """True once a ModelVersion is Promoted and served; False when the pipeline failed; None while it runs."""
    promoted = any(r.kind == "ModelVersion" and r.phase == "Promoted" for r in rows)
    deployments = [r for r in rows if r.kind == "Deployment"]
    if promoted and all(r.phase == "Healthy" for r in deployments):
        return True
    if any(
        (r.kind, r.phase) in (("TrainingRun", "Failed"), ("Dataset", "Invalid"), ("ModelVersion", "Rejected"))
        for r in rows
    ):
        return False
    return None


def _send_traffic(cfg: ClusterConfig, data: Path, out: Callable[[str], None]) -> None:
    import asyncio

    from .traffic import send_traffic

    os.environ["KUBECONFIG"] = str(cfg.kubeconfig)
    out("==> sending 10 s of prediction traffic to deployments.mlops.dev/iris (round-robin over its pods)")
    report = asyncio.run(send_traffic(NAMESPACE, "iris", data, rate=20, duration=10, drop={"species"}))
    out(f"    {report.summary()}")


def _summary(cfg: ClusterConfig, rows: list[Row], elapsed: float, ok: bool, out: Callable[[str], None]) -> None:
    bin_dir = ensure_binaries()
    out("")
    out(f"==> {'promoted' if ok else 'FAILED'} after {elapsed:.1f}s")
    out("Where to look:")
    out(f"  export KUBECONFIG={cfg.kubeconfig.resolve()} PATH={bin_dir}:$PATH")
    out(f"  kubectl get mlops -n {NAMESPACE}            # every mlops.dev object")
    out(f"  kubectl describe trainingrun iris-train -n {NAMESPACE}")
    out(f"  kubectl get mldeploy,deploy,pods -n {NAMESPACE}   # the model servers")
    out(
        f"  mlops-operator traffic iris -n {NAMESPACE} --drop species"
        f" --data {cfg.state_dir.resolve() / 'demo' / 'iris.csv'}"
    )
    out(f"  kubectl get events -n {NAMESPACE} --sort-by=.lastTimestamp")
    out(f"  MLflow UI: {cfg.mlflow_url}  (experiments mlops-datasets, mlops-training; model iris-classifier)")
    out(f"  Prometheus: {cfg.prometheus_url}")
    out(f"  operator log: {cfg.logs_dir / 'operator-demo.log'}")
