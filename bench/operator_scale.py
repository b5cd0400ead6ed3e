"""Operator footprint at scale (not a test): N mixed objects, then RSS and time until every status is written.

Usage: KUBECONFIG=.localcluster/kubeconfig python bench/operator_scale.py [--objects 1000] [--runs 3]
Target (ARCHITECTURE.md): <= 256 MiB RSS with 1,000 mixed objects.

The operator does its real work — validation Jobs, serving Deployments and Services, MLflow lookups —
but a ResourceQuota of zero pods in the bench namespace keeps the Job and ReplicaSet controllers
from starting 500 Python processes on the bench machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from mlops_operator.localcluster.binaries import ensure_binaries

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "iris"
KINDS = [
    ("datasets.mlops.dev", "dataset.yaml"),
    ("trainingruns.mlops.dev", "trainingrun.yaml"),
    ("modelversions.mlops.dev", "modelversion.yaml"),
    ("deployments.mlops.dev", "deployment.yaml"),
]


def kubectl(*args: str, input_text: str | None = None) -> str:
    result = subprocess.run(
        [str(ensure_binaries() / "kubectl"), *args], input=input_text, capture_output=True, text=True, check=True
    )
    return result.stdout


def manifests(count: int) -> str:
    docs = []
    templates = [(EXAMPLES / f).read_text() for _, f in KINDS]
    for i in range(count):
        text = templates[i % len(templates)]
        name = text.split("name: ", 1)[1].split("\n", 1)[0]
        docs.append(text.replace(f"name: {name}\n", f"name: {name}-{i}\n", 1))
    return "\n---\n".join(docs)


def acknowledged(namespace: str) -> int:
    total = 0
    for plural, _ in KINDS:
        items = json.loads(kubectl("get", plural, "-n", namespace, "-o", "json"))["items"]
        total += sum(1 for o in items if o.get("status", {}).get("observedGeneration"))
    return total


def rss_mib(pid: int) -> tuple[float, float]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def one_run(count: int) -> tuple[float, float, float]:
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", namespace)
    kubectl("create", "quota", "no-pods", "--hard=pods=0", "-n", namespace)
    try:
        kubectl("apply", "-n", namespace, "-f", "-", input_text=manifests(count))
        started = time.monotonic()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlops_operator",
                "run",
                "-n",
                namespace,
                "--liveness",
                "http://127.0.0.1:18082/healthz",
                "--metrics-port",
                "18092",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while acknowledged(namespace) < count:
                time.sleep(1)
            elapsed = time.monotonic() - started
            time.sleep(10)  # settle: watches idle, nothing more to write
            rss, peak = rss_mib(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        return elapsed, rss, peak
    finally:
        kubectl("delete", "namespace", namespace, "--wait=false")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("KUBECONFIG", str(Path(".localcluster/kubeconfig").resolve()))
    os.environ.setdefault("MLFLOW_TRACKING_URI", "http://10.244.0.1:15000")
    results = [one_run(args.objects) for _ in range(args.runs)]
    elapsed, rss, peak = (statistics.median(col) for col in zip(*results, strict=True))
    print(f"objects={args.objects} runs={args.runs} (medians)")
    print(f"  time from operator start to every status written: {elapsed:.1f} s")
    print(f"  settled RSS: {rss:.0f} MiB   peak RSS: {peak:.0f} MiB   (target <= 256 MiB: ratio {peak / 256:.2f})")


if __name__ == "__main__":
    main()
