"""The node agent survives its own crash: pods come back, no orphaned processes stay behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from mlops_operator.localcluster.processes import ManagedProcess, is_alive

from .conftest import Kube, wait_for

SLEEPER = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: sleeper}
spec:
  replicas: 1
  selector: {matchLabels: {app: sleeper}}
  template:
    metadata: {labels: {app: sleeper}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: c
        image: python:3.11
        command: [python, -c, "import os, time; print('pid', os.getpid(), flush=True); time.sleep(3600)"]
"""


def _pod(kube: Kube, namespace: str) -> dict | None:
    items = kube.json("get", "pods", "-n", namespace, "-l", "app=sleeper")["items"]
    return items[0] if items else None


def _ready_with_restarts(kube: Kube, namespace: str, restarts: int) -> dict | None:
    pod = _pod(kube, namespace)
    statuses = (pod or {}).get("status", {}).get("containerStatuses") or []
    if statuses and statuses[0]["ready"] and statuses[0]["restartCount"] >= restarts:
        return pod
    return None


def _container_pids() -> list[int]:
    out = subprocess.run(["ps", "-eww", "-o", "pid=,args="], capture_output=True, text=True, check=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "time.sleep(3600)" in line and "ip netns" not in line]


@pytest.mark.outage  # every test's pods run under the one node agent
def test_killed_agent_is_restarted_and_pods_recover(kube: Kube, namespace: str) -> None:
    state_dir = kube.kubeconfig.parent
    kube.apply(SLEEPER, namespace)
    wait_for("sleeper Ready", lambda: _ready_with_restarts(kube, namespace, 0), timeout=60)
    before = set(_container_pids())
    assert before

    agent = ManagedProcess("node-agent", state_dir / "pids" / "node-agent.pid")
    pid = agent.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for("the agent to die", lambda: not is_alive(pid), timeout=10)

    result = subprocess.run(
        [sys.executable, "-m", "mlops_operator", "cluster", "up", "--state-dir", str(state_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "node-agent               started" in result.stdout

    pod = wait_for("sleeper Ready again after a restart", lambda: _ready_with_restarts(kube, namespace, 1), timeout=60)
    last = pod["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert last["exitCode"] == 137
    orphans = [p for p in before if is_alive(p)]
    assert not orphans, f"processes of the killed agent's containers are still running: {orphans}"
