"""Real Kubernetes controllers driving pods that the node agent runs as local processes."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx

from .conftest import Kube, wait_for

JOB = """
apiVersion: batch/v1
kind: Job
metadata: {name: %(name)s}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: python:3.11
        command: [python, -c, "%(code)s"]
        env:
        - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: GREETING, valueFrom: {configMapKeyRef: {name: greeting, key: text}}}
"""


def _job_condition(kube: Kube, namespace: str, name: str, ctype: str) -> bool:
    job = kube.json("get", "job", name, "-n", namespace)
    return any(c["type"] == ctype and c["status"] == "True" for c in job.get("status", {}).get("conditions", []))


def test_job_completes_through_the_job_controller(kube: Kube, namespace: str) -> None:
    kube.run("create", "configmap", "greeting", "-n", namespace, "--from-literal=text=hello")
    code = "import os; print(os.environ['GREETING'], 'from', os.environ['POD_NAME'])"
    kube.apply(JOB % {"name": "ok", "code": code}, namespace)
    wait_for("job ok Complete", lambda: _job_condition(kube, namespace, "ok", "Complete"), timeout=60)
    pods = kube.json("get", "pods", "-n", namespace, "-l", "job-name=ok")["items"]
    assert len(pods) == 1
    pod = pods[0]
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    logs = subprocess.run(
        [sys.executable, "-m", "mlops_operator", "cluster", "logs", pod["metadata"]["name"], "-n", namespace],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"hello from {pod['metadata']['name']}" in logs


def test_failing_job_reports_its_exit_code(kube: Kube, namespace: str) -> None:
    kube.run("create", "configmap", "greeting", "-n", namespace, "--from-literal=text=bye")
    kube.apply(JOB % {"name": "bad", "code": "import sys; sys.exit(3)"}, namespace)
    wait_for("job bad Failed", lambda: _job_condition(kube, namespace, "bad", "Failed"), timeout=60)
    pod = kube.json("get", "pods", "-n", namespace, "-l", "job-name=bad")["items"][0]
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert pod["status"]["phase"] == "Failed"
    assert terminated["exitCode"] == 3 and terminated["reason"] == "Error"


WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: http
        image: python:3.11
        command: [python, -m, http.server, "8080"]
        ports: [{containerPort: 8080, name: http}]
        readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
"""


def _available(kube: Kube, namespace: str) -> bool:
    dep = kube.json("get", "deployment.apps", "web", "-n", namespace)
    return dep.get("status", {}).get("availableReplicas") == 2


def _slice_addresses(kube: Kube, namespace: str) -> set[str]:
    slices = kube.json("get", "endpointslices", "-n", namespace, "-l", "kubernetes.io/service-name=web")
    return {
        addr
        for s in slices["items"]
        for ep in s.get("endpoints") or []
        if ep.get("conditions", {}).get("ready")
        for addr in ep["addresses"]
    }


def _server_pids(pod_ips: set[str]) -> list[int]:
    out = subprocess.run(["ps", "-eww", "-o", "pid=,args="], capture_output=True, text=True, check=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "http.server 8080" in line]


def test_deployment_endpoints_and_garbage_collection(kube: Kube, namespace: str) -> None:
    kube.apply(WEB, namespace)
    wait_for("deployment web Available with 2 replicas", lambda: _available(kube, namespace), timeout=60)
    pod_ips = {p["status"]["podIP"] for p in kube.json("get", "pods", "-n", namespace, "-l", "app=web")["items"]}
    assert len(pod_ips) == 2 and not any(ip.startswith("127.") for ip in pod_ips)
    wait_for("EndpointSlice lists both pods", lambda: _slice_addresses(kube, namespace) == pod_ips, timeout=30)
    for ip in pod_ips:
        assert httpx.get(f"http://{ip}:8080/", timeout=5).status_code == 200
    before = _server_pids(pod_ips)
    assert len(before) >= 2

    kube.run("delete", "deployment.apps", "web", "-n", namespace, "--wait=false")
    wait_for(
        "pods garbage-collected",
        lambda: not kube.json("get", "pods", "-n", namespace, "-l", "app=web")["items"],
        timeout=60,
    )
    still_running = [
        pid
        for pid in before
        if subprocess.run(["kill", "-0", str(pid)], check=False, capture_output=True).returncode == 0
    ]
    assert not still_running, f"server processes survived their pods: {still_running}"
    for ip in pod_ips:
        try:
            httpx.get(f"http://{ip}:8080/", timeout=1)
            raise AssertionError(f"{ip} still answers after its pod was deleted")
        except httpx.HTTPError:
            pass


def test_crashing_container_is_restarted(kube: Kube, namespace: str) -> None:
    kube.apply(
        """
apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  restartPolicy: Always
  containers:
  - {name: c, image: python:3.11, command: [python, -c, "import sys; sys.exit(1)"]}
""",
        namespace,
    )
    status = wait_for(
        "two restarts",
        lambda: (lambda s: s if s and s[0].get("restartCount", 0) >= 2 else None)(
            kube.json("get", "pod", "crasher", "-n", namespace).get("status", {}).get("containerStatuses")
        ),
        timeout=60,
    )
    assert status[0]["lastState"]["terminated"]["exitCode"] == 1


def test_pods_reach_the_api_server_through_injected_service_env(kube: Kube, namespace: str) -> None:
    code = (
        "import json, os, ssl, urllib.request; "
        "env = os.environ; "
        "url = 'https://%s:%s/version' % (env['KUBERNETES_SERVICE_HOST'], env['KUBERNETES_SERVICE_PORT']); "
        "ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE; "
        "print('server', json.load(urllib.request.urlopen(url, context=ctx, timeout=5))['gitVersion'])"
    )
    kube.apply(
        f"""
apiVersion: v1
kind: Pod
metadata: {{name: api-client}}
spec:
  restartPolicy: Never
  containers:
  - {{name: c, image: python:3.11, command: [python, -c, "{code}"]}}
""",
        namespace,
    )
    wait_for(
        "api-client Succeeded",
        lambda: kube.json("get", "pod", "api-client", "-n", namespace).get("status", {}).get("phase") == "Succeeded",
        timeout=60,
    )
    pod_ip = kube.json("get", "pod", "api-client", "-n", namespace)["status"]["podIP"]
    assert pod_ip.startswith("10.244.")


def test_deletion_sends_sigterm_then_removes_the_pod(kube: Kube, namespace: str) -> None:
    code = (
        "import signal, sys, time; "
        "signal.signal(signal.SIGTERM, lambda *a: (print('got SIGTERM', flush=True), sys.exit(0))); "
        "print('serving', flush=True); time.sleep(600)"
    )
    kube.apply(
        f"""
apiVersion: v1
kind: Pod
metadata: {{name: graceful}}
spec:
  terminationGracePeriodSeconds: 20
  containers:
  - {{name: c, image: python:3.11, command: [python, -c, "{code}"]}}
""",
        namespace,
    )
    wait_for(
        "graceful Running",
        lambda: kube.json("get", "pod", "graceful", "-n", namespace).get("status", {}).get("phase") == "Running",
        timeout=60,
    )
    logs = [sys.executable, "-m", "mlops_operator", "cluster", "logs", "graceful", "-n", namespace]
    wait_for("the container to start", lambda: "serving" in subprocess.run(logs, capture_output=True, text=True).stdout)
    started = time.monotonic()
    kube.run("delete", "pod", "graceful", "-n", namespace, "--wait=true", timeout=60)
    assert time.monotonic() - started < 15, "a process that exits on SIGTERM must not wait out the grace period"
    assert "got SIGTERM" in subprocess.run(logs, capture_output=True, text=True, check=True).stdout


def test_namespace_deletion_is_finalized(kube: Kube) -> None:
    kube.run("create", "namespace", "t-doomed")
    kube.run("create", "configmap", "c", "-n", "t-doomed", "--from-literal=a=b")
    kube.run("delete", "namespace", "t-doomed", "--wait=false")
    wait_for(
        "namespace t-doomed to disappear",
        lambda: kube.run("get", "namespace", "t-doomed", check=False).returncode != 0,
        timeout=60,
    )
