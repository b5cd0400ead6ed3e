"""The reference profile: per-feature bins of the training data, the baseline drift is measured against.

Format (JSON, written by the worker, read by the model server and the drift monitor):

    {"formatVersion": 1, "datasetVersion": "sha256:...", "rows": 150,
     "features": {
       "sepal_length": {"kind": "numeric", "edges": [4.8, 5.2, ...], "counts": [16, 14, ...], "nulls": 0},
       "colour": {"kind": "categorical", "values": ["blue", "red"], "counts": [70, 80], "nulls": 0}}}

Numeric bins: `edges` are the k-1 interior cut points of k bins; bin 0 is (-inf, edges[0]],
bin i is (edges[i-1], edges[i]], bin k-1 is (edges[k-2], +inf) — `numpy.searchsorted(edges, x,
side="left")` gives the bin of x; edges carry at most 6 significant digits, so the `le_<edge:g>`
labels of `bin_labels` are distinct. Infinite values fall into the outer bins; `nulls` counts NaN
and missing values. Categorical bins: one per known value (the MAX_CATEGORIES most frequent, listed
in sorted order), plus a last "other" bin for everything else — values never seen in training
(reference count 0), or the rarer values of a column with more than MAX_CATEGORIES distinct ones.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

FORMAT_VERSION = 1
DEFAULT_BINS = 10
OTHER_BIN = "__other__"
# Each bin becomes a Prometheus label value on the model server: an id-like column must not
# turn into thousands of time series.
MAX_CATEGORIES = 50
EDGE_DIGITS = 6

Profile = dict[str, Any]


def numeric_edges(values: np.ndarray, bins: int = DEFAULT_BINS) -> list[float]:
    """Interior cut points at the 1/bins .. (bins-1)/bins quantiles, duplicates removed."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return []
    quantiles = np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])
    # Rounded so that two edges never print as the same bin label.
    return sorted({float(f"{q:.{EDGE_DIGITS}g}") for q in quantiles})


def numeric_bin(edges: Sequence[float], value: float) -> int:
    """The bin index of one value (NaN is not binned; callers count it as null)."""
    return int(np.searchsorted(np.asarray(edges, dtype=float), value, side="left"))


def numeric_counts(edges: Sequence[float], values: np.ndarray) -> list[int]:
    """Counts of non-NaN values per bin (len(edges) + 1 bins); infinities land in the outer bins."""
    present = values[~np.isnan(values)]
    idx = np.searchsorted(np.asarray(edges, dtype=float), present, side="left")
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


def is_null(value: Any) -> bool:
    """None, NaN (Python or NumPy), pandas NA/NaT: anything that stands for a missing value."""
    if value is None:
        return True
    if isinstance(value, (float, np.floating)):
        return math.isnan(value)
    # pandas.NA and NaT compare unequal to themselves (NA even refuses bool()); no pandas import needed.
    try:
        return bool(value != value)
    except TypeError:
        return True


def categorical_profile(items: Sequence[Any], max_categories: int = MAX_CATEGORIES) -> dict[str, Any]:
    """Counts of the most frequent values (as strings); the rest, and unseen values, share the other bin."""
    present = [str(v) for v in items if not is_null(v)]
    frequency = Counter(present)
    kept = sorted(value for value, _ in sorted(frequency.items(), key=lambda kv: (-kv[1], kv[0]))[:max_categories])
    counts = [frequency[value] for value in kept]
    return {
        "kind": "categorical",
        "values": kept,
        "counts": [*counts, len(present) - sum(counts)],
        "nulls": len(items) - len(present),
    }


def feature_profile(values: Iterable[Any], categorical: bool, bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """The profile entry for one column."""
    items = list(values)
    if categorical:
        return categorical_profile(items)
    array = np.asarray([np.nan if is_null(v) else v for v in items], dtype=float)
    edges = numeric_edges(array, bins)
    return {
        "kind": "numeric",
        "edges": edges,
        "counts": numeric_counts(edges, array),
        "nulls": int(np.count_nonzero(np.isnan(array))),
    }


def build_profile(columns: Mapping[str, tuple[Iterable[Any], bool]], rows: int, dataset_version: str) -> Profile:
    """A whole profile from {column: (values, is_categorical)}."""
    return {
        "formatVersion": FORMAT_VERSION,
        "datasetVersion": dataset_version,
        "rows": rows,
        "features": {name: feature_profile(values, cat) for name, (values, cat) in columns.items()},
    }
