"""history: served intervals with their origin, rollbacks, promotions and Events in time order."""

from __future__ import annotations

from datetime import UTC, datetime

from mlops_operator.ctl.history import derive_history, render_history, run_cause
from mlops_operator.ctl.style import Style

from .objects import MODEL, deployment, namespace_objects, run

NOW = datetime(2026, 12, 4, 11, 0, tzinfo=UTC)
STEP_EVENT = {
    "involvedObject": {"uid": "uid-dep-iris"},
    "reason": "CanaryStep",
    "message": "version 10 at 50%",
    "type": "Normal",
    "lastTimestamp": "2026-12-04T10:26:00Z",
}


def history_of(objects: dict, events: list | None = None):
    return derive_history(objects["Deployment"][0], objects["ModelVersion"], objects["TrainingRun"], events or [])


def test_served_intervals_name_version_run_and_cause() -> None:
    history = history_of(namespace_objects())
    assert history.selector == "alias 'production'" and history.model == MODEL
    first, second = history.served
    assert (first.version, first.since, first.until, first.model_version, first.training_run) == (
        8,
        "2026-12-04T10:01:00Z",
        "2026-12-04T10:20:00Z",
        f"{MODEL}-8",
        "iris-train",
    )
    assert first.how == "first version served (alias 'production')"
    assert first.origin == "trained by TrainingRun iris-train, applied by hand"
    assert second.how == "canary completed" and second.until is None
    assert (
        second.origin == "trained by TrainingRun iris-retrain-1, retraining on drift in petal_length (psi 4.897 on v8)"
    )
    assert history.in_flight == (
        "canary v10 at 50%, step 2; trained by TrainingRun iris-retrain-2, retraining on schedule"
    )


def test_changes_merge_status_and_events_in_time_order() -> None:
    history = history_of(namespace_objects(), [STEP_EVENT])
    assert [(c.at, c.version, c.reason, c.source) for c in history.changes] == [
        ("2026-12-04T10:01:00Z", 8, "Serving", "status.history"),
        ("2026-12-04T10:01:00Z", 8, "Promoted", "ModelVersion status.promotedAt"),
        ("2026-12-04T10:20:00Z", 9, "Serving", "status.history"),
        ("2026-12-04T10:20:01Z", 9, "Promoted", "ModelVersion status.promotedAt"),
        ("2026-12-04T10:25:00Z", 11, "RolledBack", "status.rollbacks"),
        ("2026-12-04T10:26:00Z", None, "CanaryStep", "Event"),
    ]
    rollback = history.changes[4]
    assert rollback.warning and rollback.message == "AnalysisFailed: error-rate 0.2 > max 0.05"


def test_the_last_retraining_decision_is_a_change() -> None:
    objects = namespace_objects()
    objects["Deployment"][0]["status"]["retraining"] = {
        "run": "iris-retrain-1",
        "decidedAt": "2026-12-04T10:14:59Z",
        "causes": ["drift"],
        "version": 8,
        "phase": "Succeeded",
    }
    (change,) = [c for c in history_of(objects).changes if c.source == "status.retraining"]
    assert (change.at, change.version, change.reason, change.message) == (
        "2026-12-04T10:14:59Z",
        8,
        "Retraining",
        "TrainingRun iris-retrain-1 created (drift); now Succeeded",
    )


def test_pinned_deployment_and_versions_without_objects() -> None:
    dep = deployment({"stableVersion": 5, "history": [{"version": 5, "from": "2026-12-04T10:00:00Z"}]})
    dep["spec"]["model"] = {"registeredModel": MODEL, "version": 5}
    history = derive_history(dep, [], [], [])
    assert history.selector == "pinned version 5"
    (served,) = history.served
    assert served.model_version is None
    assert served.origin == "no ModelVersion object for this version in the namespace"


def test_run_causes_carry_their_evidence() -> None:
    r = run("r", "2026-12-04T10:00:00Z", None, None, labels={"mlops.dev/triggered-by": "performance"})
    r["metadata"]["annotations"] = {
        "mlops.dev/retraining-causes": "performance,schedule",
        "mlops.dev/performance-metric": "accuracy",
        "mlops.dev/performance-value": "0.8123456",
        "mlops.dev/performance-labels": "240",
        "mlops.dev/schedule-cron": "0 3 * * 1",
        "mlops.dev/schedule-time-zone": "Europe/Berlin",
        "mlops.dev/schedule-fire-time": "2026-12-07T02:00:00Z",
    }
    assert run_cause(r) == (
        "retraining on performance: accuracy 0.812 over 240 labels; "
        "schedule 0 3 * * 1 Europe/Berlin (fire 2026-12-07T02:00:00Z)"
    )
    r["metadata"]["annotations"] = {
        "mlops.dev/new-data-dataset": "iris",
        "mlops.dev/new-data-version": "sha256:" + "c" * 64,
    }
    r["metadata"]["labels"] = {"mlops.dev/triggered-by": "newData"}
    assert run_cause(r) == "retraining on new data in iris (sha256:cccccccccccc)"


def test_rendered_history_has_the_table_now_and_changes() -> None:
    text = render_history(history_of(namespace_objects(), [STEP_EVENT]), NOW, Style(False))
    lines = text.splitlines()
    assert lines[0] == f"Deployment iris  model {MODEL}, alias 'production'"
    assert lines[2].split() == ["VERSION", "FROM", "TO", "FOR", "MODELVERSION", "HOW", "ORIGIN"]
    assert lines[3].split()[:5] == ["v8", "2026-12-04T10:01:00Z", "2026-12-04T10:20:00Z", "19m00s", f"{MODEL}-8"]
    assert lines[4].split()[:5] == ["v9", "2026-12-04T10:20:00Z", "now", "40m00s", f"{MODEL}-9"]
    assert any(line.startswith("NOW  canary v10 at 50%") for line in lines)
    rollback = "  2026-12-04T10:25:00Z  v11  RolledBack  AnalysisFailed: error-rate 0.2 > max 0.05  [status.rollbacks]"
    assert rollback in lines
    assert "  2026-12-04T10:26:00Z       CanaryStep  version 10 at 50%  [Event]" in lines


def test_nothing_served_says_so() -> None:
    text = render_history(derive_history(deployment({}), [], [], []), NOW, Style(False))
    assert "nothing served yet (status.history is empty)" in text
