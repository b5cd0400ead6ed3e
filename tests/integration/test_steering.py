"""Steering a canary by hand on the real cluster with `kubectl mlops` (ctl/steer.py as a subprocess): pause holds
the weight past the step's pause, resume continues, promote skips a step's wait, abort rolls back to stable."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Kube, OperatorProcess, condition, wait_for
from .test_serving import (
    Traffic,
    alias_version,
    fitted_forest,
    iris_frame,
    model_version_manifest,
    register,
    served_versions,
    set_alias,
    status,
    wait_status,
)

pytestmark = pytest.mark.cluster

# Step 1 pauses 5 s, step 2 an hour: the canary can only get past step 2 in this test by a promote.
MANIFEST = """
apiVersion: mlops.dev/v1alpha1
kind: Deployment
metadata: {{name: iris}}
spec:
  model: {{registeredModel: {model}, alias: production}}
  replicas: 2
  strategy:
    canary:
      steps: [{{weight: 10, pause: 5s}}, {{weight: 50, pause: 1h}}, {{weight: 100}}]
      analysis:
        interval: 5s
        failureLimit: 2
        metrics:
          - {{name: error-rate, builtin: errorRate, max: 0.05}}
"""


@pytest.fixture
def iris_csv(tmp_path: Path) -> Path:
    frame, target = iris_frame()
    frame["species"] = target
    frame.to_csv(tmp_path / "iris.csv", index=False)  # the rows the traffic sends (test_serving's data)
    return tmp_path / "iris.csv"


@pytest.fixture
def traffic_env(crds_installed: Kube, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("KUBECONFIG", str(crds_installed.kubeconfig))  # the traffic tool finds pods with it
    yield


def steer(kube: Kube, namespace: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`kubectl mlops <args>` as a user runs it: its own process, the kubeconfig from the environment."""
    env = {**os.environ, "KUBECONFIG": str(kube.kubeconfig)}
    argv = [sys.executable, "-m", "mlops_operator.ctl", *args, "-n", namespace]
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=90, check=False)
    print(f"$ kubectl mlops {' '.join(args)}\n{result.stdout}{result.stderr}")
    return result


def event_reasons(kube: Kube, namespace: str) -> list[str]:
    return kube.run("get", "events", "-n", namespace, "-o", "jsonpath={.items[*].reason}").stdout.split()


def test_pause_resume_promote_and_abort_a_canary_with_the_plugin(
    crds_installed: Kube, namespace: str, operator_process: OperatorProcess, iris_csv: Path, traffic_env: None
) -> None:
    kube, op, model = crds_installed, operator_process, f"steer-{namespace}"
    v1 = register(kube, model, fitted_forest(20, 0), namespace)
    set_alias(kube, model, v1)
    kube.apply(textwrap.dedent(MANIFEST.format(model=model)), namespace)
    wait_status(kube, namespace, "version 1 to serve", lambda s: s.get("phase") == "Healthy", op)
    v2 = register(kube, model, fitted_forest(30, 1), namespace)
    with Traffic(namespace, iris_csv, duration=300):
        kube.apply(model_version_manifest(model, v2), namespace)
        wait_status(kube, namespace, "the canary at 10 %", lambda s: s.get("canaryVersion") == v2, op)

        # pause: the weight holds well past the step's 5 s pause, and status says so.
        assert steer(kube, namespace, "pause", "iris").returncode == 0
        paused = wait_status(kube, namespace, "phase Paused", lambda s: s.get("phase") == "Paused", op, timeout=30)
        paused_cond = condition({"status": paused}, "Paused")
        assert paused_cond and paused_cond["status"] == "True" and paused["pausedAt"]
        held_from = time.monotonic()
        while time.monotonic() - held_from < 20:
            now = status(kube, namespace)
            assert (now["step"], now["canaryWeight"], now["canaryVersion"]) == (0, 10, v2), now
            time.sleep(1)
        assert kube.json("get", "deploy/iris-canary", "-n", namespace)["spec"]["replicas"] == 1
        spec = kube.json("get", "mldeploy/iris", "-n", namespace)["spec"]
        assert spec["paused"] is True  # a documented spec field: what `kubectl get` and Argo CD's diff show

        # resume: the rollout goes on to step 2 (50 %) once the rest of the pause and an analysis pass.
        resumed_at = time.monotonic()
        assert steer(kube, namespace, "resume", "iris").returncode == 0
        at_50 = wait_status(kube, namespace, "step 2 at 50 %", lambda s: s.get("step") == 1, op, timeout=90)
        print(f"\nresume -> next step: {time.monotonic() - resumed_at:.1f}s")
        assert at_50["canaryWeight"] == 50 and at_50.get("pausedAt") is None

        # promote: step 2 pauses an hour; the promote ends it and the canary goes on to 100 % and stable.
        promoted_at = time.monotonic()
        result = steer(kube, namespace, "promote", "iris")
        assert result.returncode == 0 and "Applied" in result.stdout, result.stdout + result.stderr
        wait_status(
            kube,
            namespace,
            "version 2 stable",
            lambda s: s.get("stableVersion") == v2 and s.get("canaryVersion") is None,
            op,
            timeout=120,
        )
        print(f"promote of the 1-hour step -> version 2 stable: {time.monotonic() - promoted_at:.1f}s")
        assert wait_for("the alias on version 2", lambda: alias_version(kube, model) == v2, timeout=30)
        # A second promote of the same (now finished) canary is refused before anything is written.
        assert steer(kube, namespace, "promote", "iris").returncode == 1

        # approve: a third version in manual mode waits for a person; the plugin's approval is recorded as its.
        v3 = register(kube, model, fitted_forest(40, 2), namespace)
        kube.apply(model_version_manifest(model, v3).replace("mode: auto", "mode: manual"), namespace)
        wait_for(
            "version 3 awaiting approval",
            lambda: (
                (condition(kube.json("get", f"modelversion/{model}-{v3}", "-n", namespace), "Ready") or {}).get(
                    "reason"
                )
                == "AwaitingApproval"
            ),
            timeout=30,
        )
        assert steer(kube, namespace, "approve", f"{model}-{v3}").returncode == 0
        # abort: its canary is rolled back to version 2, and its ModelVersion says why.
        wait_status(kube, namespace, "the canary of version 3", lambda s: s.get("canaryVersion") == v3, op)
        aborted_at = time.monotonic()
        result = steer(kube, namespace, "abort", "iris", "--reason", "integration test")
        assert result.returncode == 0 and "Applied" in result.stdout, result.stdout + result.stderr
        final = wait_status(kube, namespace, "the rollback", lambda s: s.get("phase") == "RolledBack", op)
        rollback = final["rollbacks"][-1]
        assert (rollback["version"], rollback["reason"]) == (v3, "AbortedByRequest")
        assert final["stableVersion"] == v2 and final["lastRequest"]["outcome"] == "Applied"
        wait_for(
            "all ready pods on version 2",
            lambda: (served := served_versions(kube, namespace)) and set(served.values()) == {v2} and len(served) == 2,
            timeout=60,
        )
        print(f"abort -> all pods on stable: {time.monotonic() - aborted_at:.1f}s")
    mv = wait_for(
        "ModelVersion 3 RolledBack",
        lambda: (
            (o := kube.json("get", f"modelversion/{model}-{v3}", "-n", namespace))["status"].get("phase")
            == "RolledBack"
            and o
        ),
        timeout=30,
    )
    assert "aborted by request of kubectl-mlops (integration test)" in mv["status"]["message"]
    assert mv["status"]["approval"]["by"] == "kubectl-mlops"  # the plugin's field manager, from managedFields
    assert alias_version(kube, model) == v2
    reasons = event_reasons(kube, namespace)
    for reason in ("Paused", "Resumed", "PromotedByRequest", "AbortedByRequest"):
        assert reason in reasons, (reason, reasons)
    # The request stays in the spec and applies to nothing later: the next pass records nothing new.
    assert kube.json("get", "mldeploy/iris", "-n", namespace)["spec"]["rolloutRequest"]["version"] == v3
