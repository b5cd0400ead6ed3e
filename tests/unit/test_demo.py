"""The demo's manifests, progress table, stage checks and summary, on plain data."""

from __future__ import annotations

from mlops_operator.api.deployment import DeploymentSpec
from mlops_operator.api.trainingrun import TrainingRunSpec
from mlops_operator.demo import demo_manifests
from mlops_operator.demoloop import (
    LoopResult,
    Snapshot,
    failure_of,
    no_drift_on,
    retrained_and_promoted,
    served,
    summary_lines,
)
from mlops_operator.demoview import Row, drift_figures, figures_of, render_table, rows_of


def test_figures_show_what_matters_per_kind() -> None:
    ds = {"status": {"rows": 150, "version": "sha256:0123456789abcdef0123"}}
    assert figures_of("Dataset", ds) == "rows=150 sha256:0123456789ab"
    tr = {"metadata": {}, "status": {"metrics": {"accuracy": 0.96667, "f1_macro": 0.9666}}}
    assert figures_of("TrainingRun", tr) == "accuracy=0.967 f1_macro=0.967"
    by_drift = {"metadata": {"labels": {"mlops.dev/triggered-by": "drift"}}, "status": {"jobName": "j"}}
    assert figures_of("TrainingRun", by_drift) == "job=j (by drift)"
    mv = {"spec": {"version": 3}, "status": {"phase": "Promoted", "gateResults": [{"passed": True}, {"passed": True}]}}
    assert figures_of("ModelVersion", mv) == "v3 gates 2/2 production"
    drift = {"method": "psi", "score": 0.0312, "feature": "petal_length", "samples": 2400}
    deploy = {"spec": {"replicas": 2}, "status": {"stableVersion": 1, "readyReplicas": 2, "drift": drift}}
    assert figures_of("Deployment", deploy) == "stable=v1 ready=2/2 drift psi 0.031 (petal_length, 2400 samples)"
    assert drift_figures({"score": None, "samples": 12}) == "drift: no verdict (12 samples)"


def test_table_lists_every_kind_with_stage_and_elapsed_time() -> None:
    objects = {
        "Dataset": [{"metadata": {"name": "iris"}, "status": {"phase": "Ready", "rows": 150}}],
        "Job": [
            {"metadata": {"name": "iris-check"}, "status": {"conditions": [{"type": "Complete", "status": "True"}]}}
        ],
    }
    rows = rows_of(objects)
    assert rows == [Row("Dataset", "iris", "Ready", "rows=150"), Row("Job", "iris-check", "Complete", rows[1].figures)]
    table = render_table(rows, 12.34, "drift detected")
    assert table.splitlines()[1].split()[:3] == ["Dataset", "iris", "Ready"]
    assert table.endswith("elapsed  12.3s  stage: drift detected")


def test_demo_manifests_are_valid_and_close_the_loop_quickly() -> None:
    dataset, training, deployment = demo_manifests("file:///tmp/iris.csv")
    assert dataset["kind"] == "Dataset" and dataset["spec"]["source"]["uri"] == "file:///tmp/iris.csv"
    assert training["spec"]["datasetRef"]["name"] == dataset["metadata"]["name"]
    assert deployment["spec"]["model"]["registeredModel"] == training["spec"]["registeredModel"]
    TrainingRunSpec.model_validate(training["spec"])
    spec = DeploymentSpec.model_validate(deployment["spec"])
    assert spec.retraining is not None and spec.retraining.enabled
    assert spec.monitoring is not None and spec.monitoring.drift is not None
    assert spec.monitoring.drift.min_samples == 1000  # the default guard stays on in the demo


def deployment(**status: object) -> dict:
    return {"metadata": {"name": "iris"}, "status": status}


def test_stage_checks() -> None:
    healthy = Snapshot({"Deployment": [deployment(phase="Healthy", stableVersion=1)]})
    assert served(healthy) == 1
    assert served(Snapshot({"Deployment": [deployment(phase="Progressing", stableVersion=1, canaryVersion=2)]})) is None
    no_drift = deployment(
        phase="Healthy",
        stableVersion=1,
        drift={"version": 1, "score": 0.02},
        conditions=[{"type": "DriftDetected", "status": "False"}],
    )
    assert no_drift_on(1)(Snapshot({"Deployment": [no_drift]}))
    assert not no_drift_on(2)(Snapshot({"Deployment": [no_drift]}))
    no_verdict = {**no_drift, "status": {**no_drift["status"], "drift": {"version": 1, "score": None}}}
    assert not no_drift_on(1)(Snapshot({"Deployment": [no_verdict]}))
    run = {
        "metadata": {"name": "iris-retrain-1", "labels": {"mlops.dev/triggered-by": "drift"}},
        "status": {"modelVersion": "iris-classifier-2"},
    }
    mv = {"metadata": {"name": "iris-classifier-2"}, "spec": {"version": 2}, "status": {"phase": "Promoted"}}
    done = Snapshot(
        {"Deployment": [deployment(phase="Healthy", stableVersion=2)], "TrainingRun": [run], "ModelVersion": [mv]}
    )
    assert retrained_and_promoted(done) == 2
    mid_canary = Snapshot(
        {"Deployment": [deployment(phase="Healthy", stableVersion=1)], "TrainingRun": [run], "ModelVersion": [mv]}
    )
    assert retrained_and_promoted(mid_canary) is None
    rejected = {**mv, "status": {"phase": "Rejected", "message": "accuracy 0.3 < min 0.9"}}
    assert "Rejected: accuracy 0.3 < min 0.9" in failure_of(Snapshot({"ModelVersion": [rejected]}))
    assert failure_of(done) == ""


def test_summary_gives_versions_drift_steps_and_timings() -> None:
    result = LoopResult(ok=True)
    result.marks = {
        "shift": 100.0,
        "retraining TrainingRun created": 130.5,
        "retrained version promoted through the canary": 220.0,
    }
    result.canary_weights = [10, 50, 100]
    result.drift_checks = [
        {"version": 1, "method": "psi", "score": None, "samples": 0},
        {"version": 1, "method": "psi", "score": 0.02, "feature": "sepal_width", "samples": 2400},
        {"version": 1, "method": "psi", "score": 2.5, "feature": "petal_length", "samples": 2400},
        {"version": 2, "method": "psi", "score": 0.03, "feature": "sepal_width", "samples": 1200},
    ]
    text = "\n".join(summary_lines(result))
    assert "the loop is closed" in text
    assert "drift before the shift: drift psi 0.020 (sepal_width" in text
    assert "drift at its peak:      drift psi 2.500 (petal_length, 2400 samples) on v1" in text
    assert "drift after retraining: drift psi 0.030 (sepal_width, 1200 samples) on v2" in text
    assert "canary steps seen: 10% -> 50% -> 100%" in text
    assert "shift -> TrainingRun created: 30.5s" in text
    assert "TrainingRun created -> new version at 100%: 89.5s" in text
