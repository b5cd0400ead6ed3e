"""The demo's manifests, progress table, stage checks and summary, on plain data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from mlops_operator.api.deployment import DeploymentSpec
from mlops_operator.api.trainingrun import TrainingRunSpec
from mlops_operator.demo import demo_manifests, with_quality_signals
from mlops_operator.demoloop import (
    LoopResult,
    Snapshot,
    failure_of,
    no_drift_on,
    retrained_and_promoted,
    served,
    summary_lines,
)
from mlops_operator.demoquality import (
    change_concept,
    performance_on,
    performance_retraining,
    quality_summary_lines,
    shadow_passed,
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
    assert "drift at the end:       drift psi 0.030 (sepal_width, 1200 samples) on v2" in text
    assert "canary steps seen: 10% -> 50% -> 100%" in text
    assert "shift -> TrainingRun created: 30.5s" in text
    assert "TrainingRun created -> new version at 100%: 89.5s" in text


def test_the_quality_deployment_adds_label_signals_without_touching_the_first_one() -> None:
    deployment = demo_manifests("file:///tmp/iris.csv")[2]
    before = repr(deployment)
    judged = with_quality_signals(deployment)
    assert repr(deployment) == before  # the drift stage's Deployment is unchanged
    spec = DeploymentSpec.model_validate(judged["spec"])
    assert spec.monitoring is not None and spec.monitoring.performance is not None
    assert spec.monitoring.performance.metric == "accuracy" and spec.monitoring.performance.min == 0.92
    canary = spec.strategy.canary
    assert canary.shadow is not None and canary.shadow.min_agreement == 0.75
    live = [m for m in canary.analysis.metrics if m.builtin == "liveAccuracy"]
    assert len(live) == 1 and live[0].quality is not None and live[0].quality.min_labels == 100
    # Judged at a step below 100 %, as the CRD requires of liveAccuracy.
    assert any(step.weight < 100 for step in canary.steps)
    assert spec.retraining is not None and spec.retraining.triggers.performance_degraded


def test_the_concept_change_moves_labels_and_leaves_every_input_as_it_was(tmp_path: Path) -> None:
    from mlops_operator.worker.sample_data import write_sample

    data = tmp_path / "iris.csv"
    write_sample("iris", data, ["petal_length=1.0"])
    before = pd.read_csv(data)
    relabelled = change_concept(data, "species")
    after = pd.read_csv(data)
    inputs = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    pd.testing.assert_frame_equal(before[inputs], after[inputs])
    moved = before["species"] != after["species"]
    assert relabelled == int(moved.sum()) == 25  # half of the 50 virginica rows, those with short petals
    assert set(before.loc[moved, "species"]) == {"virginica"} and set(after.loc[moved, "species"]) == {"versicolor"}
    median = before.loc[before["species"] == "virginica", "petal_length"].median()
    assert (before.loc[moved, "petal_length"] < median).all()
    assert not list(tmp_path.glob("*.relabelled.csv"))  # written aside, then moved over the data set


def test_quality_stage_checks() -> None:
    def snap(**status: object) -> Snapshot:
        return Snapshot({"Deployment": [deployment(**status)]})

    healthy = {"version": 2, "value": 0.98, "labels": 2400, "metric": "accuracy"}
    fine = snap(performance=healthy, conditions=[{"type": "PerformanceDegraded", "status": "False"}])
    assert performance_on(2, degraded=False)(fine) and not performance_on(2, degraded=True)(fine)
    assert not performance_on(3, degraded=False)(fine)  # a verdict on another version does not count
    too_few = snap(
        performance={"version": 2, "value": None, "labels": 12},
        conditions=[{"type": "PerformanceDegraded", "status": "False"}],
    )
    assert not performance_on(2, degraded=False)(too_few)
    low = {**healthy, "value": 0.83}
    degraded = snap(performance=low, conditions=[{"type": "PerformanceDegraded", "status": "True"}])
    assert performance_on(2, degraded=True)(degraded)
    assert shadow_passed(snap(shadow={"version": 3, "phase": "Running"})) is None
    assert shadow_passed(snap(shadow={"version": 3, "phase": "Passed"})) == {"version": 3, "phase": "Passed"}
    by_drift = {"metadata": {"name": "r1", "labels": {"mlops.dev/triggered-by": "drift"}}}
    by_performance = {"metadata": {"name": "r2", "labels": {"mlops.dev/triggered-by": "performance"}}}
    assert performance_retraining(Snapshot({"TrainingRun": [by_drift]})) is None
    assert performance_retraining(Snapshot({"TrainingRun": [by_drift, by_performance]})) == by_performance


def test_summary_gives_the_quality_stage() -> None:
    result = LoopResult(ok=True)
    result.marks = {
        "concept change": 300.0,
        "PerformanceDegraded": 340.0,
        "retraining TrainingRun created for performance": 341.0,
        "shadow step passed": 400.5,
        "retrained version promoted through the canary on live accuracy": 460.0,
    }
    result.performance_checks = [
        {"metric": "accuracy", "version": 2, "value": None, "labels": 40},
        {"metric": "accuracy", "version": 2, "value": 0.981, "labels": 2400},
        {"metric": "accuracy", "version": 2, "value": 0.834, "labels": 2380},
        {"metric": "accuracy", "version": 3, "value": 0.975, "labels": 2100},
    ]
    result.shadow_checks = [
        {"version": 3, "phase": "Running", "agreement": 0.8},
        {"version": 3, "phase": "Passed", "agreement": 0.836, "rows": 410, "requests": 410, "errorRate": 0.0},
    ]
    result.live_accuracy = [
        {"name": "accuracy", "version": 3, "passed": None, "message": "40/100 labels"},
        {"name": "accuracy", "version": 3, "passed": True, "message": "canary 0.97 vs stable 0.83"},
    ]
    text = "\n".join(quality_summary_lines(result))
    assert "live accuracy before the change: 0.981 over 2400 labels on v2" in text
    assert "live accuracy at its lowest: 0.834 over 2380 labels on v2" in text
    assert "live accuracy after retraining: 0.975 over 2100 labels on v3" in text
    assert "shadow step on v3: Passed, agreement 83.6%, 410 rows over 410 mirrored requests, error rate 0.0%" in text
    assert "canary live accuracy on v3: canary 0.97 vs stable 0.83" in text
    assert "concept change -> PerformanceDegraded: 40.0s" in text
    assert "concept change -> new version at 100%: 160.0s" in text
    assert quality_summary_lines(LoopResult()) == []  # no quality stage: nothing said of it


def test_summary_names_each_runs_causes() -> None:
    result = LoopResult(ok=True)
    drift = {"mlops.dev/drift-feature": "petal_length"}
    both = {**drift, "mlops.dev/performance-metric": "accuracy", "mlops.dev/performance-value": "0.830125"}
    result.final = {
        "TrainingRun": [
            {"metadata": {"name": "iris-train"}, "status": {"phase": "Succeeded", "modelVersion": "m-1"}},
            {"metadata": {"name": "iris-r1", "annotations": drift}, "status": {"phase": "Succeeded"}},
            {"metadata": {"name": "iris-r2", "annotations": both}, "status": {"phase": "Running"}},
        ]
    }
    text = "\n".join(summary_lines(result))
    assert "  iris-train: Succeeded -> m-1" in text
    assert "  iris-r1 (drift in petal_length): Succeeded" in text
    assert "  iris-r2 (drift in petal_length and degraded accuracy 0.830): Running" in text
