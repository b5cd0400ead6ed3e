"""The JSON payload carries the ML facts of the status just written; the Slack body renders them safely."""

from __future__ import annotations

from datetime import UTC, datetime

from mlops_operator.notify.payload import PAYLOAD_VERSION, build_payload, event_id, slack_message
from mlops_operator.planning.plan import Event

from .builders import DEPLOYMENT_ROLLED_BACK, MODEL_VERSION_REJECTED, obj

NOW = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)


def test_rejected_version_carries_metrics_gate_results_and_reason() -> None:
    body = MODEL_VERSION_REJECTED
    event = Event("Rejected", "gate accuracy: 0.810 < min 0.900", "Warning")
    payload = build_payload("Rejected", event, body, body["status"], NOW)
    assert payload["apiVersion"] == PAYLOAD_VERSION and payload["trigger"] == "Rejected"
    assert payload["severity"] == "Warning" and payload["time"] == "2026-12-04T12:00:00Z"
    assert payload["object"] == {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "ModelVersion",
        "namespace": "team-a",
        "name": "iris-3",
        "uid": "uid-iris-3",
    }
    assert payload["model"] == {"name": "iris", "version": 3, "alias": "production"}
    assert payload["metrics"] == {"accuracy": 0.81, "f1_macro": 0.8}
    assert payload["gates"] == [{"metric": "accuracy", "value": 0.81, "threshold": 0.9, "passed": False}]
    assert payload["reasonDetail"] == "gate accuracy: 0.810 < min 0.900"


def test_rollback_carries_the_analysis_values_and_the_rolled_back_version() -> None:
    body = DEPLOYMENT_ROLLED_BACK
    payload = build_payload("RolledBack", Event("RolledBack", "rolled back", "Warning"), body, body["status"], NOW)
    assert payload["model"] == {"name": "iris", "version": 2, "stableVersion": 1}
    assert payload["analysis"][0] == {"name": "error-rate", "value": 0.4, "threshold": 0.05, "passed": False}
    assert payload["rollback"]["reason"] == payload["reasonDetail"] == "AnalysisFailed"


def test_canary_step_drift_and_training_facts() -> None:
    step = obj(
        "Deployment",
        "iris",
        {"model": {"registeredModel": "iris"}},
        {"stableVersion": 1, "canaryVersion": 2, "canaryWeight": 50, "step": 1, "analysis": [{"name": "e"}]},
    )
    payload = build_payload("CanaryStep", Event("CanaryStep", "version 2 at 50%"), step, step["status"], NOW)
    assert payload["model"]["version"] == 2 and payload["canary"] == {"weight": 50, "step": 1}
    assert payload["analysis"] == [{"name": "e"}] and "drift" not in payload

    drift_status = {"stableVersion": 1, "drift": {"feature": "petal_length", "score": 4.9, "method": "psi"}}
    drifted = obj("Deployment", "iris", {"model": {"registeredModel": "iris"}}, drift_status)
    payload = build_payload("DriftDetected", Event("DriftDetected", "drift"), drifted, drift_status, NOW)
    assert payload["drift"] == {"feature": "petal_length", "score": 4.9, "method": "psi"}
    assert "analysis" not in payload and payload["model"]["version"] == 1

    run_status = {"modelVersion": "iris-7", "metrics": {"accuracy": 0.97}, "datasetVersion": "sha256:ab"}
    run = obj(
        "TrainingRun",
        "train",
        {"registeredModel": "iris", "datasetRef": {"name": "iris-data"}},
        run_status,
        labels={"mlops.dev/triggered-by": "drift"},
    )
    payload = build_payload("Trained", Event("Succeeded", "registered"), run, run_status, NOW)
    assert payload["model"] == {"name": "iris", "version": 7}
    assert payload["dataset"] == {"name": "iris-data", "version": "sha256:ab"}
    assert payload["metrics"] == {"accuracy": 0.97} and payload["triggeredBy"] == "drift"


def test_event_id_is_stable_per_pass_and_differs_across_passes() -> None:
    body, event = MODEL_VERSION_REJECTED, Event("Rejected", "m", "Warning")
    assert event_id(body, event) == event_id(dict(body), Event("Rejected", "m", "Warning"))
    later = {**body, "metadata": {**body["metadata"], "resourceVersion": "43"}}
    assert event_id(later, event) != event_id(body, event)


def test_slack_message_has_text_blocks_and_escapes_mentions() -> None:
    body = MODEL_VERSION_REJECTED
    event = Event("Rejected", "gate <!channel> & friends", "Warning")
    message = slack_message(build_payload("Rejected", event, body, body["status"], NOW))
    assert message["text"].startswith(":warning: Rejected: ModelVersion team-a/iris-3")
    assert "<!channel>" not in str(message) and "&lt;!channel&gt; &amp; friends" in message["text"]
    assert [b["type"] for b in message["blocks"]] == ["section", "section", "context"]
    fields = [f["text"] for f in message["blocks"][1]["fields"]]
    assert "*Model*\niris v3" in fields and "*Gate accuracy*\n0.81 vs 0.9: failed" in fields
