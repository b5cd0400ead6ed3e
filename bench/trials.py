"""Trial searches as pods (not a test): the same 48-candidate search at parallelism 1 and 2, and objects per strategy.

Usage: KUBECONFIG=.localcluster/kubeconfig python bench/trials.py [--runs 1] [--cases grid-p1,grid-p2,...]

Each case gets a fresh namespace, the iris Dataset (the sample CSV, file:// on the local node) and one
TrainingRun searching the same 48-point DecisionTreeClassifier grid, and an operator watching only that
namespace. It reports apply -> Succeeded, the search itself (first trial Job created -> last one complete,
from the Jobs' own timestamps), and the objects left in etcd (Jobs, pods, mlops.dev objects, Events) and
MLflow runs (parent + children). From parallelism 1 and 2 it solves T(p) = s + 48 c / p for the per-round
start-up s and per-trial time c and prints the arithmetic for more nodes (one core each, nothing shared).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from mlops_operator.localcluster.binaries import ensure_binaries
from mlops_operator.localcluster.config import ClusterConfig

GRID_48 = "{max_depth: [1, 2, 3, 4, 5, 6], min_samples_leaf: [1, 2, 4, 8], criterion: [gini, entropy]}"
CASES = {
    "gridsearchcv": None,  # today's path: GridSearchCV inside the one training pod
    "grid-p1": "{strategy: grid, parallelism: 1}",
    "grid-p2": "{strategy: grid, parallelism: 2}",
    "random16-p2": "{strategy: random, maxTrials: 16, parallelism: 2}",
    "halving-p2": "{strategy: halving, factor: 3, parallelism: 2}",
}
TIMEOUT_S = 1800


def kubectl(*args: str, input_text: str | None = None) -> str:
    result = subprocess.run(
        [str(ensure_binaries() / "kubectl"), *args], input=input_text, capture_output=True, text=True, check=True
    )
    return result.stdout


def manifests(csv: Path, trials: str | None) -> str:
    search = f"search: {GRID_48}" + (f"\n          trials: {trials}" if trials else "")
    return textwrap.dedent(
        f"""
        apiVersion: mlops.dev/v1alpha1
        kind: Dataset
        metadata: {{name: iris}}
        spec:
          source: {{uri: "file://{csv}", format: csv}}
          target: species
        ---
        apiVersion: mlops.dev/v1alpha1
        kind: TrainingRun
        metadata: {{name: search}}
        spec:
          datasetRef: {{name: iris}}
          estimator: sklearn.tree.DecisionTreeClassifier
          params: {{random_state: 0}}
          {search}
          registeredModel: bench-trials-MODEL
          activeDeadlineSeconds: {TIMEOUT_S}
        """
    )


def ts(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").timestamp()


@dataclass
class Result:
    case: str
    total_s: float
    search_s: float | None
    jobs: int
    pods: int
    mlops_objects: int
    events: int
    mlflow_runs: int


def count(kind: str, namespace: str) -> int:
    return len(json.loads(kubectl("get", kind, "-n", namespace, "-o", "json"))["items"])


def mlflow_runs(uid: str) -> int:
    api = f"{os.environ['MLFLOW_TRACKING_URI']}/api/2.0/mlflow"
    experiment = httpx.get(f"{api}/experiments/get-by-name", params={"experiment_name": "mlops-training"}).json()
    body = {
        "experiment_ids": [experiment["experiment"]["experiment_id"]],
        "filter": f"tags.`mlops.dev/uid` = '{uid}'",
        "max_results": 1000,
    }
    return len(httpx.post(f"{api}/runs/search", json=body).json().get("runs", []))


def one_run(case: str, csv: Path, port: int) -> Result:
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", namespace)
    argv = [sys.executable, "-m", "mlops_operator", "run", "-n", namespace,
            "--liveness", f"http://127.0.0.1:{port}/healthz", "--metrics-port", str(port + 10)]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        text = manifests(csv, CASES[case]).replace("MODEL", namespace)
        started = time.monotonic()
        kubectl("apply", "-n", namespace, "-f", "-", input_text=text)
        deadline = started + TIMEOUT_S
        while True:
            run = json.loads(kubectl("get", "trainingrun/search", "-n", namespace, "-o", "json"))
            phase = (run.get("status") or {}).get("phase")
            if phase in ("Succeeded", "Failed"):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{case}: not finished after {TIMEOUT_S}s")
            time.sleep(1)
        total = time.monotonic() - started
        if phase != "Succeeded":
            raise RuntimeError(f"{case}: {run['status'].get('message')}")
        time.sleep(3)  # the ModelVersion and the last Events land
        jobs = json.loads(kubectl("get", "jobs", "-n", namespace, "-o", "json"))["items"]
        rounds = [j for j in jobs if "mlops.dev/trial-round" in j["metadata"]["labels"]]
        search = None
        if rounds:
            first = min(ts(j["metadata"]["creationTimestamp"]) for j in rounds)
            search = max(ts(j["status"]["completionTime"]) for j in rounds) - first
        mlops = sum(count(kind, namespace) for kind in ("datasets.mlops.dev", "trainingruns", "modelversions"))
        return Result(
            case, total, search, len(jobs), count("pods", namespace), mlops, count("events", namespace),
            mlflow_runs(run["metadata"]["uid"]),
        )  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        kubectl("delete", "namespace", namespace, "--wait=false")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args()
    os.environ.setdefault("KUBECONFIG", str(Path(".localcluster/kubeconfig").resolve()))
    os.environ.setdefault("MLFLOW_TRACKING_URI", "http://10.244.0.1:15000")
    # Under the node's data dir: pods run from images read only that of the host (docs/images.md).
    data_dir = ClusterConfig.from_env(Path(".localcluster")).data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-trials-", dir=data_dir) as tmp:
        csv = Path(tmp) / "iris.csv"
        worker = Path(sys.executable).parent / "mlops-worker"
        subprocess.run([str(worker), "sample-data", "iris", "--out", str(csv)], check=True, capture_output=True)
        os.chmod(tmp, 0o755)  # readable should the node agent run pods as another user
        results: dict[str, list[Result]] = {}
        for case in args.cases.split(","):
            for _ in range(args.runs):
                result = one_run(case, csv, 18283)
                results.setdefault(case, []).append(result)
                print(f"  {case}: {result.total_s:.1f}s", file=sys.stderr, flush=True)
    print_table(results)


def median(values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def print_table(results: dict[str, list[Result]]) -> None:
    print("| case | apply -> Succeeded | search (trial Jobs) | Jobs | pods | mlops objects | Events | MLflow runs |")
    print("|---|---|---|---|---|---|---|---|")
    for case, runs in results.items():
        search = median([r.search_s for r in runs])
        shown = f"{search:.1f} s" if search is not None else "—"
        r = runs[0]
        print(f"| {case} | {median([x.total_s for x in runs]):.1f} s | {shown} | {r.jobs} | {r.pods} | "
              f"{r.mlops_objects} | {r.events} | {r.mlflow_runs} |")  # fmt: skip
    one, two = (median([r.search_s for r in results.get(k, [])]) for k in ("grid-p1", "grid-p2"))
    if one and two and one > two:
        per_trial = (one - two) / 24  # T(1) - T(2) = 48c - 24c
        startup = one - 48 * per_trial
        print(
            f"\nT(p) = s + 48 c / p with s = {startup:.1f} s (a round's pod start-up), c = {per_trial:.2f} s a trial:"
        )
        for pods in (4, 8, 16, 48):
            print(f"  {pods:>2} pods on {pods} free cores: {startup + 48 * per_trial / pods:.1f} s")
    print(
        "\nPer-trial objects instead (Katib: an Experiment, then a Trial, a Job and a pod per trial): 48 candidates"
        " = 1 + 3 x 48 = 145 objects, 1,000 = 3,001. Here: one Job per round and one pod per shard."
    )


if __name__ == "__main__":
    main()
