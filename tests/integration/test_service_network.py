"""Services on the local cluster as on any other: pods find them by DNS name (CoreDNS) and reach their
ClusterIPs (kube-proxy, nftables mode), from pods and from the host, only while endpoints are ready."""

from __future__ import annotations

import subprocess
import sys

import httpx

from .conftest import Kube, wait_for
from .test_workloads import WEB, _available

# Each name a pod in the namespace may use for the Service, and the API server's own Service by name.
CLIENT_CODE = (
    "import socket, urllib.request; "
    "names = ['web', 'web.%(ns)s', 'web.%(ns)s.svc', 'web.%(ns)s.svc.cluster.local']; "
    "[print(n, urllib.request.urlopen('http://%%s/' %% n, timeout=5).status, flush=True) for n in names]; "
    "print('kubernetes', socket.gethostbyname('kubernetes.default.svc'), flush=True)"
)


def _pod_phase(kube: Kube, namespace: str, name: str) -> str | None:
    return kube.json("get", "pod", name, "-n", namespace).get("status", {}).get("phase")


def test_pods_reach_a_service_by_name_and_the_host_by_cluster_ip(kube: Kube, namespace: str) -> None:
    kube.apply(WEB, namespace)
    wait_for("deployment web Available with 2 replicas", lambda: _available(kube, namespace), timeout=60)
    cluster_ip = kube.json("get", "service", "web", "-n", namespace)["spec"]["clusterIP"]
    assert cluster_ip.startswith("10.96.")
    # kube-proxy programs the rule within its sync period once the EndpointSlice lists ready pods.
    wait_for(
        "the ClusterIP answers from the host",
        lambda: _answers(f"http://{cluster_ip}:80/"),
        timeout=30,
    )
    code = CLIENT_CODE % {"ns": namespace}
    kube.apply(
        f"""
apiVersion: v1
kind: Pod
metadata: {{name: web-client}}
spec:
  restartPolicy: Never
  containers:
  - {{name: c, image: python:3.11, command: [python, -c, "{code}"]}}
""",
        namespace,
    )
    phase = wait_for(
        "web-client finished",
        lambda: (lambda p: p if p in ("Succeeded", "Failed") else None)(_pod_phase(kube, namespace, "web-client")),
        timeout=60,
    )
    logs = subprocess.run(
        [sys.executable, "-m", "mlops_operator", "cluster", "logs", "web-client", "-n", namespace],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    assert phase == "Succeeded", logs
    for name in ("web", f"web.{namespace}", f"web.{namespace}.svc", f"web.{namespace}.svc.cluster.local"):
        assert f"{name} 200" in logs
    kubernetes_ip = kube.json("get", "service", "kubernetes", "-n", "default")["spec"]["clusterIP"]
    assert f"kubernetes {kubernetes_ip}" in logs

    kube.run("scale", "deployment.apps", "web", "-n", namespace, "--replicas=0")
    wait_for("the ClusterIP refuses once no endpoint is ready", lambda: not _answers(f"http://{cluster_ip}:80/"), 30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
