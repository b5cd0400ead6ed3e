"""Model-server pod start-to-Ready on the local node (not a test): from its image vs as a host process.

Usage: .venv/bin/python bench/pod_start.py [--runs 3] [--state-dir .localcluster]

The same pod twice over: the server container as the operator plans it (`mlops-server --model-uri=...`,
read-only root, /tmp emptyDir, the readiness probe on /v2/health/ready), once with the image `make images`
built (the node agent runs it from a fresh rootfs in the store) and once with an image name the store does
not have (the node agent runs `mlops-server` from the repository's venv). The iris model is registered in
the cluster's MLflow first, as the serving tests do. Each run: the Pod created, then its Ready condition's
time minus its creation time (seconds, the API server's clock, 1 s resolution), and the agent's own
"started container" to first Ready probe. Medians over --runs; each pod is deleted before the next.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mlops_operator import __version__  # noqa: E402
from mlops_operator.localcluster.binaries import ensure_binaries  # noqa: E402
from mlops_operator.localcluster.config import ClusterConfig  # noqa: E402
from mlops_operator.planning.jobs import harden  # noqa: E402

IMAGE = f"mlops-operator/server:{__version__}"
NOT_IN_STORE = f"example.invalid/mlops-server:{__version__}"  # so the agent runs it as a host process
NAMESPACE = "bench-pod-start"
TIMEOUT_S = 180


def kubectl(cfg: ClusterConfig, *args: str, input_text: str | None = None) -> str:
    argv = [str(ensure_binaries() / "kubectl"), f"--kubeconfig={cfg.kubeconfig}", *args]
    return subprocess.run(argv, input=input_text, capture_output=True, text=True, check=True, timeout=60).stdout


def register_iris(cfg: ClusterConfig) -> str:
    """The serving tests' iris forest in the cluster's MLflow; its models:/ URI."""
    from tests.fixtures.cluster import Kube
    from tests.integration.test_serving import fitted_forest, register

    kube = Kube(cfg.kubeconfig, ensure_binaries() / "kubectl", cfg.mlflow_url, cfg.prometheus_url, cfg.state_dir)
    name = f"bench-pod-start-{uuid.uuid4().hex[:6]}"
    version = register(kube, name, fitted_forest(20, 0), NAMESPACE)
    return f"models:/{name}/{version}"


def server_pod(name: str, image: str, model_uri: str, cfg: ClusterConfig) -> dict[str, Any]:
    container = {
        "name": "server",
        "image": image,
        "command": ["mlops-server"],
        "args": [f"--model-uri={model_uri}", "--port=8080", "--workers=1"],
        "env": [
            {"name": "MLFLOW_TRACKING_URI", "value": cfg.mlflow_url},
            {"name": "HOME", "value": "/tmp"},
            {"name": "MLOPS_NAMESPACE", "value": NAMESPACE},
        ],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": 8080}, "periodSeconds": 1},
    }
    spec = harden({"containers": [container], "restartPolicy": "Never"})
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NAMESPACE}, "spec": spec}


def stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def one_run(cfg: ClusterConfig, image: str, model_uri: str) -> float:
    name = f"server-{uuid.uuid4().hex[:6]}"
    kubectl(cfg, "apply", "-f", "-", input_text=json.dumps(server_pod(name, image, model_uri, cfg)))
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            pod = json.loads(kubectl(cfg, "get", "pod", name, "-n", NAMESPACE, "-o", "json"))
            ready = [c for c in pod["status"].get("conditions") or [] if c["type"] == "Ready" and c["status"] == "True"]
            if ready:
                return stamp(ready[0]["lastTransitionTime"]) - stamp(pod["metadata"]["creationTimestamp"])
            time.sleep(0.2)
        raise SystemExit(f"pod {name} ({image}) not Ready in {TIMEOUT_S}s")
    finally:
        kubectl(cfg, "delete", "pod", name, "-n", NAMESPACE, "--wait=true", "--timeout=60s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--state-dir", type=Path, default=REPO / ".localcluster")
    args = parser.parse_args()
    cfg = ClusterConfig.from_env(args.state_dir)
    subprocess.run(
        [str(ensure_binaries() / "kubectl"), f"--kubeconfig={cfg.kubeconfig}", "create", "namespace", NAMESPACE],
        capture_output=True,
        check=False,
    )
    model_uri = register_iris(cfg)
    results: dict[str, list[float]] = {"from the image": [], "host process": []}
    for _ in range(args.runs):  # interleaved, so a load change hits both alike
        results["from the image"].append(one_run(cfg, IMAGE, model_uri))
        results["host process"].append(one_run(cfg, NOT_IN_STORE, model_uri))
    print(f"server pod created -> Ready, {args.runs} runs each (s, API server timestamps)")
    print(f"{'mode':<16} {'median':>7} {'min':>5} {'max':>5}  runs")
    for mode, values in results.items():
        line = f"{mode:<16} {statistics.median(values):>7.1f} {min(values):>5.0f} {max(values):>5.0f}  {values}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
