"""The demo's progress table and verdict, on plain data."""

from __future__ import annotations

from mlops_operator.demo import Row, _verdict, demo_manifests, figures_of, render_table


def test_figures_show_what_matters_per_kind() -> None:
    ds = {"status": {"rows": 150, "version": "sha256:0123456789abcdef0123"}}
    assert figures_of("Dataset", ds) == "rows=150 sha256:0123456789ab"
    tr = {"status": {"metrics": {"accuracy": 0.96667, "f1_macro": 0.9666}}}
    assert figures_of("TrainingRun", tr) == "accuracy=0.967 f1_macro=0.967"
    mv = {"spec": {"version": 3}, "status": {"phase": "Promoted", "gateResults": [{"passed": True}, {"passed": True}]}}
    assert figures_of("ModelVersion", mv) == "v3 gates 2/2 production"


def test_table_and_verdict() -> None:
    rows = [Row("Dataset", "iris", "Ready", "rows=150"), Row("TrainingRun", "iris-train", "Running", "")]
    table = render_table(rows, 12.34)
    assert table.splitlines()[1].split()[:3] == ["Dataset", "iris", "Ready"] and table.endswith("elapsed  12.3s")
    assert _verdict(rows) is None
    promoted = [*rows, Row("ModelVersion", "iris-classifier-1", "Promoted", "")]
    assert _verdict(promoted) is True
    assert _verdict([*promoted, Row("Deployment", "iris", "Progressing", "")]) is None
    assert _verdict([Row("TrainingRun", "x", "Failed", "")]) is False


def test_demo_points_the_example_dataset_at_local_data() -> None:
    dataset, training, deployment = demo_manifests("file:///tmp/iris.csv")
    assert deployment["spec"]["model"]["registeredModel"] == training["spec"]["registeredModel"]
    assert dataset["kind"] == "Dataset" and dataset["spec"]["source"]["uri"] == "file:///tmp/iris.csv"
    assert training["spec"]["datasetRef"]["name"] == dataset["metadata"]["name"]
