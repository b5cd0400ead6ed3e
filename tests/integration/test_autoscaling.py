"""Autoscaling and disruption budgets on the real cluster: the operator's HPA is acted on by the real HPA controller
(min/max hold even without a metrics API), the canary keeps its share of the stable count, a full step empties the
stable track and its end refills it, the PDBs refuse an eviction past maxUnavailable, and removing autoscaling
deletes the HPA."""

from __future__ import annotations

import json
import textwrap
import time
from typing import Any

import pytest

from .conftest import Kube, OperatorProcess, wait_for
from .test_serving import (
    fitted_forest,
    model_version_manifest,
    register,
    served_versions,
    set_alias,
    wait_status,
)

pytestmark = pytest.mark.cluster

MANIFEST = """
apiVersion: mlops.dev/v1alpha1
kind: Deployment
metadata: {{name: iris}}
spec:
  model: {{registeredModel: {model}, alias: production}}
  autoscaling: {{minReplicas: {low}, maxReplicas: 3, target: {{inFlightRequests: 4}}}}
  strategy:
    canary:
      steps: [{{weight: 50, pause: 10s}}, {{weight: 100, pause: 10s}}]
"""


def uid_of(kube: Kube, namespace: str, kind: str) -> str | None:
    """The uid of a namespaced object, None while it does not exist."""
    found = kube.run("get", kind, "-n", namespace, "-o", "jsonpath={.metadata.uid}", check=False)
    return found.stdout.strip() or None if found.returncode == 0 else None


def replicas(kube: Kube, namespace: str, track: str) -> tuple[int, int]:
    """(spec.replicas, readyReplicas) of a track's apps/v1 Deployment."""
    obj = kube.json("get", f"deploy/iris-{track}", "-n", namespace)
    return int(obj["spec"].get("replicas", 0)), int(obj["status"].get("readyReplicas") or 0)


def evict(kube: Kube, namespace: str, pod: str) -> tuple[int, str]:
    """POST an Eviction for a pod, as `kubectl drain` does: (0 or 1, what the API server said)."""
    body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": namespace}}
    path = f"/api/v1/namespaces/{namespace}/pods/{pod}/eviction"
    result = kube.run("create", "--raw", path, "-f", "-", input_text=json.dumps(body), check=False)
    return result.returncode, result.stdout + result.stderr


def test_the_hpa_scales_the_stable_track_and_the_canary_keeps_its_share(
    crds_installed: Kube, namespace: str, operator_process: OperatorProcess
) -> None:
    kube, op, model = crds_installed, operator_process, f"scale-{namespace}"
    v1 = register(kube, model, fitted_forest(20, 0), namespace)
    set_alias(kube, model, v1)
    kube.apply(textwrap.dedent(MANIFEST.format(model=model, low=1)), namespace)
    wait_status(kube, namespace, "version 1 to serve", lambda s: s.get("phase") == "Healthy", op)

    hpa = kube.json("get", "hpa/iris-stable", "-n", namespace)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "iris-stable"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 3)
    assert hpa["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
    for track in ("stable", "canary"):
        pdb = kube.json("get", f"pdb/iris-{track}", "-n", namespace)
        assert pdb["spec"]["maxUnavailable"] == 1 and pdb["spec"]["selector"]["matchLabels"]["mlops.dev/track"] == track
    # A deleted child wakes its owner at once (its watch event), well before any resync.
    for kind in ("pdb/iris-canary", "hpa/iris-stable", "service/iris"):
        uid = uid_of(kube, namespace, kind)
        kube.run("delete", kind, "-n", namespace)
        wait_for(f"{kind} restored", lambda k=kind, u=uid: uid_of(kube, namespace, k) not in (None, u), timeout=20)
        assert kube.json("get", kind, "-n", namespace)["metadata"]["ownerReferences"][0]["name"] == "iris"

    # The real HPA controller raises the stable track to the new floor; the operator leaves its count alone.
    raised_at = time.monotonic()
    kube.apply(textwrap.dedent(MANIFEST.format(model=model, low=2)), namespace)
    wait_for("the HPA to scale stable to 2", lambda: replicas(kube, namespace, "stable") == (2, 2), timeout=120)
    print(f"\nminReplicas 1 -> 2: two Ready stable pods after {time.monotonic() - raised_at:.1f}s")
    wait_for(
        "the stable budget to allow one disruption",
        lambda: kube.json("get", "pdb/iris-stable", "-n", namespace)["status"].get("disruptionsAllowed") == 1,
        timeout=60,
    )
    pods = sorted(served_versions(kube, namespace))
    first, message = evict(kube, namespace, pods[0])
    assert first == 0, message
    second, message = evict(kube, namespace, pods[1])
    assert second != 0 and "disruption budget" in message, message
    wait_for("the evicted pod replaced", lambda: replicas(kube, namespace, "stable") == (2, 2), timeout=120)

    # A 50 % step: the canary gets as many pods as the stable track has; at 100 % the stable track is emptied.
    v2 = register(kube, model, fitted_forest(30, 1), namespace)
    kube.apply(model_version_manifest(model, v2), namespace)
    counts: set[tuple[int, int, int]] = set()

    def record(s: dict[str, Any]) -> bool:
        weight = s.get("canaryWeight")
        if weight:
            counts.add((weight, replicas(kube, namespace, "stable")[0], replicas(kube, namespace, "canary")[0]))
        return s.get("stableVersion") == v2 and s.get("canaryVersion") is None

    wait_status(kube, namespace, "version 2 to be stable", record, op, timeout=240)
    print(f"(weight, stable replicas, canary replicas) seen: {sorted(counts)}")
    assert (50, 2, 2) in counts, counts
    assert (100, 0, 3) in counts, counts  # 2 + 2 pods, capped at maxReplicas 3
    # The end of the rollout refills the stable track to the canary's count, within the HPA's bounds; the canary's
    # pods serve until the stable ones are Ready, then go.
    wait_for("stable refilled to 3", lambda: replicas(kube, namespace, "stable") == (3, 3), timeout=120)
    wait_for("the canary emptied", lambda: replicas(kube, namespace, "canary")[0] == 0, timeout=60)
    wait_for("every pod on version 2", lambda: set(served_versions(kube, namespace).values()) == {v2}, timeout=60)

    # Without autoscaling, the HPA goes and spec.replicas (default 2) holds again.
    manual = textwrap.dedent(MANIFEST.format(model=model, low=2)).replace(
        "  autoscaling: {minReplicas: 2, maxReplicas: 3, target: {inFlightRequests: 4}}\n", ""
    )
    assert "autoscaling" not in manual
    kube.apply(manual, namespace)
    wait_for(
        "the HPA deleted",
        lambda: kube.run("get", "hpa/iris-stable", "-n", namespace, check=False).returncode != 0,
        timeout=60,
    )
    wait_for("stable back at spec.replicas", lambda: replicas(kube, namespace, "stable") == (2, 2), timeout=120)
    wait_status(kube, namespace, "Healthy", lambda s: s.get("phase") == "Healthy", op)
