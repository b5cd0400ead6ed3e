"""Live model quality on the real local cluster: signed prediction ids, labels sent back to the model server,
counted by Prometheus, and the operator's PerformanceDegraded verdict on the serving version."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.fixtures.cluster import Kube, wait_for
from tests.fixtures.faults import (
    IRIS_COLUMNS,
    IRIS_ROWS,
    ServerPod,
    StatusRecorder,
    condition_is,
    events_about,
    operator_for,
    ready_pods,
    reasons,
    serve_first_version,
    serving_deployment,
)

pytestmark = pytest.mark.cluster
FEEDBACK_SECRET = "mlops-feedback"
ROWS = IRIS_ROWS * 10  # 30 rows a request


LABEL_MAX_AGE_S = 20


def predict_with_ids(pod: ServerPod) -> tuple[list[Any], list[str]]:
    """Predictions and their ids from one pod's /invocations."""
    response = httpx.post(
        f"http://{pod.ip}:8080/invocations",
        json={"dataframe_split": {"columns": IRIS_COLUMNS, "data": ROWS}},
        timeout=10,
    )
    response.raise_for_status()
    body = response.json()
    assert len(body["prediction_ids"]) == len(body["predictions"]) == len(ROWS), body
    return body["predictions"], body["prediction_ids"]


def send_feedback(pod: ServerPod, items: list[dict[str, Any]]) -> dict[str, Any]:
    response = httpx.post(f"http://{pod.ip}:8080/feedback", json={"feedback": items}, timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def labelled_round(pods: list[ServerPod], right: bool) -> int:
    """Predict through every pod and label each prediction through the *next* pod (any replica verifies an id):
    with its own class (right) or another class (wrong). Returns the labels accepted."""
    accepted = 0
    for i, pod in enumerate(pods):
        predictions, ids = predict_with_ids(pod)
        classes = sorted({str(p) for p in predictions} | {"setosa", "versicolor", "virginica"})
        labels = [p if right else next(c for c in classes if c != str(p)) for p in predictions]
        answer = send_feedback(
            pods[(i + 1) % len(pods)], [{"id": d, "label": lab} for d, lab in zip(ids, labels, strict=True)]
        )
        assert not answer["rejected"], answer
        accepted += answer["accepted"]
    return accepted


@pytest.mark.timeout(600)
def test_labels_sent_back_give_live_accuracy_and_a_wrong_stream_degrades_it(
    crds_installed: Kube, namespace: str, tmp_path: Path
) -> None:
    kube, model = crds_installed, f"quality-{namespace}"
    kube.run(
        "create", "secret", "generic", FEEDBACK_SECRET, f"--from-literal=key={secrets.token_hex(32)}", "-n", namespace
    )
    manifest = yaml.safe_load(serving_deployment(model, [{"weight": 50}, {"weight": 100}]))
    manifest["spec"]["monitoring"] = {
        "performance": {
            "metric": "accuracy",
            "min": 0.9,
            "window": "90s",
            "minLabels": 100,
            "interval": "10s",
            "consecutiveWindows": 2,
        }
    }
    # Short, so the test can send a label past it; the default is 168h.
    manifest["spec"]["server"] = {"feedbackMaxAge": f"{LABEL_MAX_AGE_S}s"}
    env = {"MLOPS_FEEDBACK_SECRET": FEEDBACK_SECRET}
    with operator_for(kube, namespace, tmp_path / "operator.log", extra_env=env) as op:
        rec = StatusRecorder(kube, namespace, op)
        v1 = serve_first_version(kube, namespace, model, yaml.safe_dump(manifest), rec)
        pods = wait_for("two Ready server pods", lambda: (p := ready_pods(kube, namespace)) and len(p) == 2 and p, 90)

        # A forged or altered id is refused per item, and nothing is counted for it.
        predictions, ids = predict_with_ids(pods[0])
        altered = ids[0][:-4] + ("AAAA" if not ids[0].endswith("AAAA") else "BBBB")
        answer = send_feedback(
            pods[1], [{"id": altered, "label": str(predictions[0])}, {"id": "not-an-id", "label": "x"}]
        )
        assert answer["accepted"] == 0 and [r["reason"] for r in answer["rejected"]] == ["signature", "malformed"]

        # A late label counts on the other replica; one older than spec.server.feedbackMaxAge is refused as expired.
        predictions, ids = predict_with_ids(pods[0])
        issued = time.monotonic()
        time.sleep(LABEL_MAX_AGE_S / 3)
        late = send_feedback(pods[1], [{"id": ids[0], "label": str(predictions[0])}])
        assert late["accepted"] == 1 and late["rejected"] == [], late
        time.sleep(max(0.0, LABEL_MAX_AGE_S + 3 - (time.monotonic() - issued)))
        expired = send_feedback(pods[1], [{"id": ids[1], "label": str(predictions[1])}])
        assert expired["accepted"] == 0 and [r["reason"] for r in expired["rejected"]] == ["expired"], expired

        # Right labels, a steady stream: live accuracy 1.0 once Prometheus has scraped them.
        good = label_until(
            rec,
            pods,
            True,
            lambda s: (
                (s.get("performance") or {}).get("labels", 0) >= 100
                and condition_is(s, "PerformanceDegraded", "False", "WithinBounds")
            ),
            timeout=180,
        )
        performance = good["performance"]
        print(f"\nright labels: {performance['message']}; tracks {performance['tracks']}")
        assert performance["version"] == v1 and performance["value"] == 1.0
        assert {(t["version"], t["track"]) for t in performance["tracks"]} == {(v1, "stable")}

        # Wrong labels (inputs unchanged): accuracy falls, PerformanceDegraded after 2 checks, one Event.
        began = time.monotonic()
        status = label_until(rec, pods, False, lambda s: condition_is(s, "PerformanceDegraded", "True"), timeout=240)
        print(
            f"wrong labels -> PerformanceDegraded in {time.monotonic() - began:.0f}s:"
            f" {status['performance']['message']}"
        )
        assert status["performance"]["value"] < 0.9
        events = events_about(kube, namespace, "Deployment", "iris")
        assert reasons(events).count("PerformanceDegraded") == 1, reasons(events)
        warning = next(e for e in events if e["reason"] == "PerformanceDegraded")
        assert warning["type"] == "Warning" and "< min 0.9" in warning["message"]


def label_until(rec: StatusRecorder, pods: list[ServerPod], right: bool, check: Any, timeout: float) -> dict[str, Any]:
    """Label a round of predictions about every second until `check(status)` holds (bounded in time)."""
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        labelled_round(pods, right)
        status = rec.poll() or status
        if check(status):
            return status
        time.sleep(1.0)
    rec.dump()
    raise AssertionError(f"timed out after {timeout:.0f}s labelling (right={right}); last status {status}")
