"""The shadow step on the real local cluster: stable servers mirror live requests to the candidate's shadow pods
through its Service; a candidate that disagrees is rolled back before any user reaches it, stable untouched."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from sklearn.ensemble import RandomForestClassifier

from tests.fixtures.cluster import Kube
from tests.fixtures.faults import (
    StatusRecorder,
    events_about,
    operator_for,
    predict,
    ready_pods,
    serve_first_version,
    serving_deployment,
)

pytestmark = pytest.mark.cluster


def disagreeing_forest() -> RandomForestClassifier:
    """A forest that learnt every iris class shifted by one: it answers unlike the stable on every row."""
    from tests.integration.test_serving import iris_frame

    frame, target = iris_frame()
    return RandomForestClassifier(n_estimators=10, random_state=3).fit(frame.to_numpy(), (target + 1) % 3)


def shadow_manifest(model: str) -> str:
    """Two canary steps behind a 30 s shadow step that mirrors every request (sample 1.0)."""
    manifest = yaml.safe_load(serving_deployment(model, [{"weight": 50}, {"weight": 100}], progress_deadline="2m"))
    # Judged on agreement here; the latency gate has its unit tests. Beside 3 other workers on 2 cores the one
    # shadow pod, which takes every mirrored request, once answered at 2.04x the stable's p95 (18.4 vs 9.0 ms).
    shadow = {"duration": "30s", "minRequests": 20, "sample": 1.0, "minAgreement": 0.9, "maxLatencyRatio": 10}
    manifest["spec"]["strategy"]["canary"]["shadow"] = shadow
    return yaml.safe_dump(manifest)


def send_until(
    kube: Kube, namespace: str, rec: StatusRecorder, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Users keep sending requests to the stable pods (each mirrored to the shadow) until `done(status)`."""
    deadline, answered = time.monotonic() + 240, 0
    status = rec.poll() or {}
    while time.monotonic() < deadline and not done(status):
        for pod in ready_pods(kube, namespace, track="stable"):
            response = predict(pod)
            assert response.status_code == 200, response.text
            answered += 1
        status = rec.poll() or status
        time.sleep(0.5)
    if not done(status):
        rec.dump()
        raise AssertionError(f"the shadow step did not end within 240 s ({answered} requests answered)")
    return status


@pytest.mark.timeout(600)
def test_an_agreeing_shadow_hands_over_to_the_first_canary_step(
    crds_installed: Kube, namespace: str, tmp_path: Path
) -> None:
    from tests.integration.test_serving import fitted_forest, model_version_manifest, register

    kube, model = crds_installed, f"shadow-{namespace}"
    with operator_for(kube, namespace, tmp_path / "operator.log") as op:
        rec = StatusRecorder(kube, namespace, op)
        v1 = serve_first_version(kube, namespace, model, shadow_manifest(model), rec)
        v2 = register(kube, model, fitted_forest(10, 0), namespace)  # the same forest: it agrees on every row
        kube.apply(model_version_manifest(model, v2), namespace)
        rec.wait("the shadow step to start", lambda s: (s.get("shadow") or {}).get("version") == v2, timeout=120)
        status = send_until(
            kube, namespace, rec, lambda s: (s.get("canaryWeight") or 0) > 0 or bool(s.get("rollbacks"))
        )

        print(f"\nshadow of version {v2}: {status['shadow']}")
        assert not status.get("rollbacks"), status["rollbacks"]
        assert status["shadow"]["phase"] == "Passed" and status["shadow"]["agreement"] == 1.0
        assert status["canaryVersion"] == v2 and status["canaryWeight"] == 50 and status["stableVersion"] == v1
        events = events_about(kube, namespace, "Deployment", "iris")
        assert [e["type"] for e in events if e["reason"] == "ShadowPassed"] == ["Normal"]


@pytest.mark.timeout(600)
def test_a_disagreeing_shadow_is_rolled_back_before_any_user_sees_it(
    crds_installed: Kube, namespace: str, tmp_path: Path
) -> None:
    from tests.integration.test_serving import model_version_manifest, register

    kube, model = crds_installed, f"shadow-{namespace}"
    with operator_for(kube, namespace, tmp_path / "operator.log") as op:
        rec = StatusRecorder(kube, namespace, op)
        v1 = serve_first_version(kube, namespace, model, shadow_manifest(model), rec)
        v2 = register(kube, model, disagreeing_forest(), namespace)
        kube.apply(model_version_manifest(model, v2), namespace)
        rec.wait("the shadow step to start", lambda s: (s.get("shadow") or {}).get("version") == v2, timeout=120)

        status = send_until(kube, namespace, rec, lambda s: bool(s.get("rollbacks")))

        rollback = status["rollbacks"][-1]
        print(f"\nshadow of version {v2}: {status['shadow']}; rollback: {rollback['message']}")
        assert rollback["version"] == v2 and rollback["reason"] == "ShadowDisagreement", rollback
        assert status["shadow"]["phase"] == "Failed" and status["shadow"]["agreement"] < 0.9
        assert status["shadow"]["requests"] >= 20
        assert status["stableVersion"] == v1 and status.get("canaryVersion") is None
        # Stable untouched: no user request ever went to the candidate, the stable track never gave up a pod.
        assert not rec.seen(lambda s: (s.get("canaryWeight") or 0) > 0), "the candidate got user traffic"
        stable = kube.json("get", "deployments.apps/iris-stable", "-n", namespace)
        assert stable["spec"]["replicas"] == 2
        events = events_about(kube, namespace, "Deployment", "iris")
        rolled_back = [e for e in events if e["reason"] == "RolledBack"]
        assert len(rolled_back) == 1 and "rows agreed" in rolled_back[0]["message"], rolled_back
        assert rolled_back[0]["type"] == "Warning"
        assert any(e["reason"] == "ShadowStarted" for e in events)
