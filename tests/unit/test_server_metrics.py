"""Metrics: bin counting (pure) and what /metrics shows after known inputs."""

from __future__ import annotations

from typing import Any

import numpy as np
from mlops_operator.contract import METRIC_IN_FLIGHT
from mlops_operator.profile import OTHER_BIN, bin_labels, build_profile, numeric_counts
from mlops_operator.server import metrics
from mlops_operator.server.metrics import ServerMetrics, bin_counts, categorical_bins, numeric_bins, outcome_of
from mlops_operator.server.schema import Batch, Column, InputSchema

from .test_server_app import call, sample
from .test_server_registry import IRIS_COLUMNS, Registry, make_app, registry

__all__ = ["registry"]


def test_metric_names_are_the_contract() -> None:
    assert metrics.REQUESTS_TOTAL == "mlops_server_requests_total"
    assert metrics.REQUEST_DURATION_SECONDS == "mlops_server_request_duration_seconds"
    assert metrics.FEATURE_BIN_TOTAL == "mlops_server_feature_bin_total"
    assert metrics.ROWS_TOTAL == "mlops_server_rows_total"
    assert metrics.LABELS == ("model", "version", "track", "deployment")
    assert metrics.LATENCY_BUCKETS[0] <= 0.001 and metrics.LATENCY_BUCKETS[-1] == 10.0


def test_outcomes() -> None:
    assert [outcome_of(s) for s in (200, 404, 413, 422, 500)] == [
        "success", "client_error", "client_error", "client_error", "server_error"
    ]  # fmt: skip
    assert outcome_of(503, shed=True) == "rejected"


def test_numeric_bins_follow_the_profile_rule() -> None:
    edges = np.array([1.0, 2.0, 3.0])
    values = np.array([0.5, 1.0, 1.5, 3.0, 3.5, np.nan, np.inf])
    bins, nulls = numeric_bins(edges, values)
    assert bins.tolist() == [0, 0, 1, 2, 3, 3] and nulls == 1
    counts = dict(bin_counts(bins, 4))
    assert counts == {0: 2, 1: 1, 2: 1, 3: 2}
    assert [counts.get(i, 0) for i in range(4)] == numeric_counts(edges.tolist(), values)
    assert bin_counts(np.array([2]), 4) == [(2, 1)]


def test_batch_counting_matches_the_profile_rule() -> None:
    """The vectorised path (no NaN) and the per-feature path (with NaN) both count like profile.numeric_counts."""
    rng = np.random.default_rng(1)
    train = rng.normal(size=(200, 3))
    names = ["x", "y", "z"]
    profile = build_profile({n: (train[:, i].tolist(), False) for i, n in enumerate(names)}, 200, "sha256:x")
    schema = InputSchema(tuple(Column(n, "double") for n in names))
    live = rng.normal(0.5, 1.2, size=(50, 3))
    live[0, 0] = np.inf
    with_nan = np.where(np.arange(150).reshape(50, 3) == 7, np.nan, live)
    for matrix in (live, with_nan, live[:5], with_nan[:5]):  # vectorised, per feature, small (plain Python) x2
        counted = ServerMetrics("m", "stable", "d")
        counted.bind("1", schema, profile)
        counted.scored(Batch(rows=len(matrix), matrix=matrix))
        text = counted.exposition()[0].decode()
        for i, name in enumerate(names):
            feature = profile["features"][name]
            got = [sample(text, "mlops_server_feature_bin_total", feature=name, bin=b) for b in bin_labels(feature)]
            assert got == numeric_counts(feature["edges"], matrix[:, i]), name
            assert sample(text, "mlops_server_feature_nulls_total", feature=name) == np.isnan(matrix[:, i]).sum()
        assert sample(text, "mlops_server_rows_total") == len(matrix)


def test_categorical_bins() -> None:
    index = {"blue": 0, "red": 1}
    bins, nulls = categorical_bins(index, ["red", "green", None, "blue", "red", float("nan")], integer=False)
    assert bins.tolist() == [1, 2, 0, 1] and nulls == 2
    bins, _ = categorical_bins({"1": 0, "2": 1}, [1.0, 2.0, 3.0], integer=True)
    assert bins.tolist() == [0, 1, 2]


def test_metrics_after_known_inputs(registry: Registry) -> None:
    app = make_app(registry)
    try:
        frame = registry.iris_x.iloc[:30]
        body = {"dataframe_split": {"columns": IRIS_COLUMNS, "data": frame.to_numpy().tolist()}}
        assert call(app, "POST", "/invocations", json=body).status_code == 200
        one = {"inputs": [{"name": c, "shape": [1], "datatype": "FP64", "data": [float(frame[c].iloc[0])]}
                          for c in IRIS_COLUMNS]}  # fmt: skip
        assert call(app, "POST", "/v2/models/iris-classifier/infer", json=one).status_code == 200
        assert call(app, "POST", "/invocations", json={"instances": [[1.0]]}).status_code == 422
        text = call(app, "GET", "/metrics").text
        base = {"model": "iris-classifier", "version": "1", "track": "canary", "deployment": "iris"}
        assert sample(text, "mlops_server_requests_total", **base, outcome="success") == 2
        assert sample(text, "mlops_server_requests_total", **base, outcome="client_error") == 1
        assert sample(text, "mlops_server_request_duration_seconds_count", **base) == 3
        assert sample(text, "mlops_server_rows_total", **base) == 31
        for column in IRIS_COLUMNS:
            feature = registry.iris_profile["features"][column]
            values = np.concatenate([frame[column].to_numpy(), frame[column].to_numpy()[:1]])
            expected = numeric_counts(feature["edges"], values)
            got = [sample(text, "mlops_server_feature_bin_total", **base, feature=column, bin=label)
                   for label in bin_labels(feature)]  # fmt: skip
            assert got == expected, column
        assert "species" not in text  # the target is in the profile, not in the inputs
    finally:
        app.stop()


def test_categorical_metrics_and_switches(registry: Registry) -> None:
    app = make_app(registry, "models:/pets/1")
    quiet = make_app(registry, "models:/pets/1", drift=False)
    off = make_app(registry, "models:/pets/1", metrics=False)
    try:
        rows = [{"colour": c, "weight": 10.0} for c in ("red", "red", "purple", "blue")]
        for each in (app, quiet, off):
            assert call(each, "POST", "/invocations", json={"dataframe_records": rows}).status_code == 200
        text = call(app, "GET", "/metrics").text
        got = {b: sample(text, "mlops_server_feature_bin_total", feature="colour", bin=b)
               for b in ("blue", "green", "red", OTHER_BIN)}  # fmt: skip
        assert got == {"blue": 1, "green": 0, "red": 2, OTHER_BIN: 1}
        quiet_text = call(quiet, "GET", "/metrics").text
        assert sample(quiet_text, "mlops_server_rows_total") == 4
        assert "mlops_server_feature_bin_total{" not in quiet_text
        assert call(off, "GET", "/metrics").text == ""
    finally:
        for each in (app, quiet, off):
            each.stop()


def test_the_servers_own_feedback_series_start_at_zero_before_any_label() -> None:
    # increase() cannot see a counter's first value: a series born at 120 would lose 120 labels.
    served = ServerMetrics("m", "canary", "d", feedback=True)
    text = served.exposition()[0].decode()
    assert "mlops_server_feedback_total{" not in text, "no version bound yet: nothing to start"
    served.bind("3")
    text = served.exposition()[0].decode()
    for outcome in ("correct", "incorrect"):
        labels = f'deployment="d",model="m",outcome="{outcome}",track="canary",version="3"'
        assert f"mlops_server_feedback_total{{{labels}}} 0.0" in text, text
    assert 'mlops_server_feedback_absolute_error_count{deployment="d",model="m",track="canary",version="3"} 0.0' in text
    assert 'mlops_server_feedback_squared_error_total{deployment="d",model="m",track="canary",version="3"} 0.0' in text
    assert ServerMetrics("m", "canary", "d").exposition()[0].decode().count("mlops_server_feedback") == 0


def test_in_flight_counts_admitted_requests_until_answered_even_when_scoring_fails(registry: Registry) -> None:
    app = make_app(registry)
    assert app.metrics is not None
    static = {"model": "iris-classifier", "track": "canary", "deployment": "iris"}
    seen: list[float] = []
    score = app._score

    async def watched(*args: Any) -> Any:  # the gauge as an HPA scraping mid-request sees it
        seen.append(sample(app.metrics.exposition()[0].decode(), METRIC_IN_FLIGHT, **static))
        return await score(*args)

    app._score = watched  # type: ignore[method-assign]
    try:
        row = {"dataframe_split": {"columns": IRIS_COLUMNS, "data": [[5.1, 3.5, 1.4, 0.2]]}}
        assert call(app, "POST", "/invocations", json=row).status_code == 200
        assert call(app, "POST", "/invocations", json={"instances": [[1.0]]}).status_code == 422
        text = call(app, "GET", "/metrics").text
        assert seen == [1, 1] and sample(text, METRIC_IN_FLIGHT, **static) == 0
        assert "version" not in next(line for line in text.splitlines() if line.startswith("mlops_server_requests_in"))
    finally:
        app.stop()
