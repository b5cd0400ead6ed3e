"""The reference profile format: edges, counts, bin lookup, categorical bins."""

from __future__ import annotations

import math

import numpy as np
import pytest
from mlops_operator import profile


def test_edges_are_interior_deciles_of_a_uniform_range() -> None:
    edges = profile.numeric_edges(np.arange(1, 101, dtype=float))
    assert len(edges) == 9
    assert edges == sorted(edges)
    assert edges[0] == pytest.approx(10.9) and edges[-1] == pytest.approx(90.1)


def test_edges_drop_duplicates_and_ignore_nan_and_inf() -> None:
    values = np.array([1.0] * 50 + [2.0] * 50 + [np.nan, np.inf, -np.inf])
    edges = profile.numeric_edges(values)
    assert edges == sorted(set(edges)) and len(edges) < 9
    assert all(1.0 <= e <= 2.0 for e in edges)
    assert profile.numeric_edges(np.array([np.nan, np.nan])) == []


def test_edges_are_rounded_so_bin_labels_are_distinct() -> None:
    values = np.linspace(1_000_000.0, 1_000_010.0, 1000)
    edges = profile.numeric_edges(values, bins=20)
    labels = profile.bin_labels({"kind": "numeric", "edges": edges})
    assert len(set(labels)) == len(labels) == len(edges) + 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(0.5, 0, id="below-first-edge"),
        pytest.param(1.0, 0, id="on-first-edge-is-bin-0"),
        pytest.param(1.0001, 1, id="just-above-first-edge"),
        pytest.param(3.0, 2, id="on-last-edge"),
        pytest.param(9.0, 3, id="above-last-edge"),
    ],
)
def test_numeric_bin_is_searchsorted_left(value: float, expected: int) -> None:
    assert profile.numeric_bin([1.0, 2.0, 3.0], value) == expected


def test_numeric_counts_match_numeric_bin_for_every_value() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=500)
    edges = profile.numeric_edges(values)
    counts = profile.numeric_counts(edges, values)
    expected = np.bincount([profile.numeric_bin(edges, v) for v in values], minlength=len(edges) + 1)
    assert counts == expected.tolist()
    assert sum(counts) == 500


def test_numeric_profile_counts_nulls_and_bins_infinities_at_the_ends() -> None:
    entry = profile.feature_profile([1.0, 2.0, 3.0, 4.0, None, float("nan"), math.inf, -math.inf], categorical=False)
    assert entry["kind"] == "numeric"
    assert entry["nulls"] == 2
    assert sum(entry["counts"]) == 6
    assert entry["counts"][0] >= 1 and entry["counts"][-1] >= 1


def test_categorical_profile_sorted_values_and_trailing_other_bin() -> None:
    entry = profile.feature_profile(["red", "blue", "red", None, float("nan"), "green"], categorical=True)
    assert entry == {"kind": "categorical", "values": ["blue", "green", "red"], "counts": [1, 1, 2, 0], "nulls": 2}


def test_categorical_bin_sends_unseen_values_to_other() -> None:
    assert profile.categorical_bin(["blue", "red"], "red") == 1
    assert profile.categorical_bin(["blue", "red"], "purple") == 2
    assert profile.bin_labels({"kind": "categorical", "values": ["blue", "red"]}) == ["blue", "red", profile.OTHER_BIN]


def test_high_cardinality_keeps_most_frequent_and_counts_the_rest_as_other() -> None:
    values = ["common"] * 10 + [f"id-{i}" for i in range(200)]
    entry = profile.categorical_profile(values, max_categories=5)
    assert len(entry["values"]) == 5 and "common" in entry["values"]
    assert entry["counts"][entry["values"].index("common")] == 10
    assert sum(entry["counts"]) == 210
    assert entry["counts"][-1] == 210 - 10 - 4


def test_is_null_covers_none_nan_and_pandas_missing() -> None:
    import pandas as pd

    assert all(profile.is_null(v) for v in (None, float("nan"), np.float32("nan"), pd.NA, pd.NaT))
    assert not any(profile.is_null(v) for v in (0, 0.0, "", "nan-like", False))


def test_build_profile_shape() -> None:
    built = profile.build_profile(
        {"x": ([1.0, 2.0], False), "c": (["a", "b"], True)}, rows=2, dataset_version="sha256:0"
    )
    assert built["formatVersion"] == profile.FORMAT_VERSION
    assert built["rows"] == 2 and built["datasetVersion"] == "sha256:0"
    assert set(built["features"]) == {"x", "c"}
    assert built["features"]["c"]["counts"] == [1, 1, 0]


def test_single_value_column_has_one_edge_and_two_bins() -> None:
    entry = profile.feature_profile([5.0] * 10, categorical=False)
    assert entry["edges"] == [5.0] and entry["counts"] == [10, 0]
    assert profile.bin_labels(entry) == ["le_5", "gt_5"]


def test_empty_numeric_column_has_one_bin_labelled_all() -> None:
    entry = profile.feature_profile([None, None], categorical=False)
    assert entry["edges"] == [] and entry["counts"] == [0] and entry["nulls"] == 2
    assert profile.bin_labels(entry) == ["all"]
