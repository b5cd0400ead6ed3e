"""The reference profile: per-feature bins of the training data, the baseline drift is measured against.

Format (JSON, written by the worker, read by the model server and the drift monitor):

    {"formatVersion": 1, "datasetVersion": "sha256:...", "rows": 150,
     "features": {
       "sepal_length": {"kind": "numeric", "edges": [4.8, 5.2, ...], "counts": [16, 14, ...], "nulls": 0},
       "colour": {"kind": "categorical", "values": ["blue", "red"], "counts": [70, 80], "nulls": 0}}}

Numeric bins: `edges` are the k-1 interior cut points of k bins; bin 0 is (-inf, edges[0]],
bin i is (edges[i-1], edges[i]], bin k-1 is (edges[k-2], +inf) — `numpy.searchsorted(edges, x,
side="left")` gives the bin of x. Categorical bins: one per known value, plus a last "other" bin
(reference count 0) for values never seen in training.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

FORMAT_VERSION = 1
DEFAULT_BINS = 10
OTHER_BIN = "__other__"

Profile = dict[str, Any]


def numeric_edges(values: np.ndarray, bins: int = DEFAULT_BINS) -> list[float]:
    """Interior cut points at the 1/bins .. (bins-1)/bins quantiles, duplicates removed."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return []
    quantiles = np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])
    return sorted({float(q) for q in quantiles})


def numeric_bin(edges: Sequence[float], value: float) -> int:
    """The bin index of one value (NaN is not binned; callers count it as null)."""
    return int(np.searchsorted(np.asarray(edges, dtype=float), value, side="left"))


def numeric_counts(edges: Sequence[float], values: np.ndarray) -> list[int]:
    """Counts of finite values per bin (len(edges) + 1 bins)."""
    finite = values[np.isfinite(values)]
    idx = np.searchsorted(np.asarray(edges, dtype=float), finite, side="left")
    return np.bincount(idx, minlength=len(edges) + 1).astype(int).tolist()


def categorical_bin(values: Sequence[str], value: str) -> int:
    """The bin index of one category; unseen values fall into the trailing 'other' bin."""
    try:
        return list(values).index(value)
    except ValueError:
        return len(values)


def bin_labels(feature: dict[str, Any]) -> list[str]:
    """Human-readable bin labels, used as Prometheus label values ('le_4.8', 'gt_6.4', 'setosa')."""
    if feature["kind"] == "categorical":
        return [*feature["values"], OTHER_BIN]
    edges = feature["edges"]
    return [f"le_{e:g}" for e in edges] + ([f"gt_{edges[-1]:g}"] if edges else ["all"])


def feature_profile(values: Iterable[Any], categorical: bool, bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """The profile entry for one column."""
    items = list(values)
    if categorical:
        present = [str(v) for v in items if v is not None and not (isinstance(v, float) and math.isnan(v))]
        distinct = sorted(set(present))
        counts = [present.count(v) for v in distinct] + [0]
        return {"kind": "categorical", "values": distinct, "counts": counts, "nulls": len(items) - len(present)}
    array = np.asarray(items, dtype=float)
    edges = numeric_edges(array, bins)
    return {
        "kind": "numeric",
        "edges": edges,
        "counts": numeric_counts(edges, array),
        "nulls": int(np.count_nonzero(~np.isfinite(array))),
    }


def build_profile(columns: dict[str, tuple[Iterable[Any], bool]], rows: int, dataset_version: str) -> Profile:
    """A whole profile from {column: (values, is_categorical)}."""
    return {
        "formatVersion": FORMAT_VERSION,
        "datasetVersion": dataset_version,
        "rows": rows,
        "features": {name: feature_profile(values, cat) for name, (values, cat) in columns.items()},
    }
