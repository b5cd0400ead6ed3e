"""Prometheus metrics of the model server: requests, latency, rows, and live inputs counted into reference bins.

The operator queries these by name (canary analysis: error rate and p99; drift: the bin counters
summed over replicas), so the names and labels below are a contract.

With several worker processes (`--workers N`) prometheus_client's multiprocess mode is used: the
CLI points PROMETHEUS_MULTIPROC_DIR at an empty directory before any worker imports
prometheus_client, each worker writes its counters to memory-mapped files there, and /metrics (in
whichever worker answers) merges them, so one scrape covers the whole pod.
"""

from __future__ import annotations

import os
import threading
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from .. import contract
from ..profile import Profile, bin_labels, is_null
from .schema import INT_TYPES, Batch, InputSchema
from .shadow import ShadowMetrics

# Exposed names (prometheus_client adds `_total` to counters itself, see `_base`).
REQUESTS_TOTAL = "mlops_server_requests_total"
REQUEST_DURATION_SECONDS = "mlops_server_request_duration_seconds"
ROWS_TOTAL = "mlops_server_rows_total"
FEATURE_BIN_TOTAL = "mlops_server_feature_bin_total"
FEATURE_NULLS_TOTAL = "mlops_server_feature_nulls_total"

LABELS = ("model", "version", "track", "deployment")
OUTCOME_SUCCESS = "success"
OUTCOME_CLIENT_ERROR = "client_error"  # 4xx: the request was wrong
OUTCOME_SERVER_ERROR = "server_error"  # 5xx after admission: the server or model failed
OUTCOME_REJECTED = "rejected"  # 503 + Retry-After before any work: shed past --max-inflight
OUTCOME_NOT_READY = "not_ready"  # 503 before any work: this worker's model is not loaded (yet, or at all)
OUTCOMES = (OUTCOME_SUCCESS, OUTCOME_CLIENT_ERROR, OUTCOME_SERVER_ERROR, OUTCOME_REJECTED, OUTCOME_NOT_READY)
# What a canary's errorRate counts: every request the server failed, whatever the reason, so that
# an overloaded canary (shedding) cannot pass. Kept apart above so dashboards can tell why.
ERROR_OUTCOMES = (OUTCOME_SERVER_ERROR, OUTCOME_REJECTED, OUTCOME_NOT_READY)
# 250 us .. 10 s: sub-millisecond requests are the norm for small models, 10 s is a client timeout.
# Batches of at most this many values are binned in plain Python (numpy's per-call cost dominates).
SMALL_BATCH = 64
# Above this many comparisons (rows x features x edges) a batch is binned feature by feature.
VECTOR_LIMIT = 2_000_000
# |prediction - label| of a regression, in the target's own unit, so buckets span 1e-3 .. 1e6 (1, 2.5, 5 a decade).
ERROR_BUCKETS = (*(float(f"{m}e{e}") for e in range(-3, 6) for m in (1, 2.5, 5)), 1e6)
LATENCY_BUCKETS = (0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _base(name: str) -> str:
    return name.removesuffix("_total")


def outcome_of(status: int, shed: bool = False) -> str:
    """The outcome label of a response status."""
    if shed:
        return OUTCOME_REJECTED
    if status < 400:
        return OUTCOME_SUCCESS
    return OUTCOME_CLIENT_ERROR if status < 500 else OUTCOME_SERVER_ERROR


def multiprocess_dir() -> str | None:
    """The multiprocess directory when prometheus_client runs in multiprocess mode."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


@dataclass
class FeatureBins:
    """How one input column is binned: numeric edges or categorical values, and its counters per bin."""

    column: int
    name: str
    edges: np.ndarray | None  # numeric
    values: dict[str, int] | None  # categorical: value -> bin; unseen values go to the last bin
    integer: bool  # categorical over an integer column: '3', not '3.0'
    counters: list[Any]
    nulls: Any


def numeric_bins(edges: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, int]:
    """Bin index of each non-NaN value (profile.py's rule: infinities in the outer bins) and the NaN count."""
    missing = np.isnan(values)
    if not missing.any():
        return np.searchsorted(edges, values, side="left"), 0
    return np.searchsorted(edges, values[~missing], side="left"), int(np.count_nonzero(missing))


def categorical_bins(index: dict[str, int], values: Sequence[Any], integer: bool) -> tuple[np.ndarray, int]:
    """Bin index of each non-null value (unseen -> the trailing 'other' bin) and how many were null."""
    other = len(index)
    bins: list[int] = []
    nulls = 0
    for v in values:
        if is_null(v):
            nulls += 1
            continue
        key = str(int(v)) if integer and isinstance(v, float) else str(v)
        bins.append(index.get(key, other))
    return np.asarray(bins, dtype=np.intp), nulls


def bin_counts(bins: np.ndarray, size: int) -> list[tuple[int, int]]:
    """(bin, count) for every bin that received values; one bincount, no per-value Python."""
    if bins.size == 1:
        return [(int(bins[0]), 1)]
    counts = np.bincount(bins, minlength=size)
    touched = np.flatnonzero(counts)
    return list(zip(touched.tolist(), counts[touched].tolist(), strict=True))


class ServerMetrics:
    """The server's metric families and, once a model is loaded, its label-bound children."""

    def __init__(
        self,
        model: str,
        track: str,
        deployment: str,
        *,
        drift: bool = True,
        feedback: bool = False,
        shadow: bool = False,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.drift = drift
        self._lock = threading.Lock()
        self._static = {"model": model, "track": track, "deployment": deployment}
        self.requests = Counter(
            _base(REQUESTS_TOTAL), "Inference requests by outcome.", [*LABELS, "outcome"], registry=self.registry
        )
        self.duration = Histogram(
            REQUEST_DURATION_SECONDS,
            "Time from request to response of admitted requests.",
            LABELS,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rows = Counter(_base(ROWS_TOTAL), "Rows scored.", LABELS, registry=self.registry)
        # No version label: a request admitted before a model swap is answered after it, on the same child.
        # livesum: the pod's value is the sum over its live worker processes (an HPA Pods-metric target).
        self.in_flight = Gauge(
            contract.METRIC_IN_FLIGHT,
            "Prediction requests admitted and not yet answered.",
            list(self._static),
            multiprocess_mode="livesum",
            registry=self.registry,
        )
        self._in_flight = self.in_flight.labels(**self._static)
        self.feature_bins = Counter(
            _base(FEATURE_BIN_TOTAL),
            "Scored input values per reference-profile bin.",
            [*LABELS, "feature", "bin"],
            registry=self.registry,
        )
        self.feature_nulls = Counter(
            _base(FEATURE_NULLS_TOTAL),
            "Scored input values that were null (not binned).",
            [*LABELS, "feature"],
            registry=self.registry,
        )
        # Registered only when ids are minted: a server without a key exposes no empty families.
        self.feedback = FeedbackMetrics(self.registry, self._static) if feedback else None
        self.shadow = ShadowMetrics(self.registry, self._static) if shadow else None
        self.bind("")

    def bind(self, version: str, schema: InputSchema | None = None, profile: Profile | None = None) -> None:
        """Pre-resolve the children for `version` so the hot path never builds label tuples."""
        labels = {**self._static, "version": version}
        if self.shadow is not None:
            self.shadow.version = version
        if self.feedback is not None:
            self.feedback.version = version
            if version:
                self.feedback.start_at_zero(version)
        self._outcomes = {o: self.requests.labels(**labels, outcome=o) for o in OUTCOMES}
        self._duration = self.duration.labels(**labels)
        self._rows = self.rows.labels(**labels)
        self._features: list[FeatureBins] = []
        if schema is not None and profile is not None and self.drift:
            for j, column in enumerate(schema.columns):
                feature = profile.get("features", {}).get(column.name)
                if not feature:
                    continue  # e.g. a column the dataset profile does not know; nothing to compare with
                labelled = [self.feature_bins.labels(**labels, feature=column.name, bin=b) for b in bin_labels(feature)]
                categorical = feature["kind"] == "categorical"
                self._features.append(
                    FeatureBins(
                        column=j,
                        name=column.name,
                        edges=None if categorical else np.asarray(feature["edges"], dtype=np.float64),
                        values={str(v): i for i, v in enumerate(feature["values"])} if categorical else None,
                        integer=column.type in INT_TYPES,
                        counters=labelled,
                        nulls=self.feature_nulls.labels(**labels, feature=column.name),
                    )
                )
        # Every bin of every feature has one global index: a batch is counted with one bincount.
        sizes = [len(f.counters) for f in self._features]
        self._offsets = np.cumsum([0, *sizes])[:-1].astype(np.intp)
        self._bin_children = [c for f in self._features for c in f.counters]
        self._pending_bins = np.zeros(len(self._bin_children), dtype=np.int64)
        self._pending_nulls = np.zeros(len(self._features), dtype=np.int64)
        self._pending_rows = 0
        numeric = [k for k, f in enumerate(self._features) if f.edges is not None and len(f.edges)]
        self._numeric = np.asarray(numeric, dtype=np.intp)
        self._numeric_columns = np.asarray([self._features[k].column for k in numeric], dtype=np.intp)
        edge_sets = [self._features[k].edges for k in numeric]
        width = max((e.size for e in edge_sets if e is not None), default=0)
        self._edge_lists = [self._features[k].edges.tolist() for k in numeric]  # type: ignore[union-attr]
        self._offset_list = [int(self._offsets[k]) for k in numeric]
        # Interior edges padded with +inf: `x > edge` summed over a row is searchsorted(edges, x, "left").
        self._edges = np.full((len(numeric), width), np.inf)
        for row, k in enumerate(numeric):
            edges = self._features[k].edges
            assert edges is not None
            self._edges[row, : len(edges)] = edges

    def admitted(self) -> None:
        """A prediction request took an in-flight slot."""
        self._in_flight.inc()

    def answered(self) -> None:
        """A prediction request gave its in-flight slot back."""
        self._in_flight.dec()

    def request(self, outcome: str, seconds: float | None) -> None:
        """Count one inference request; latency only for admitted ones (shed requests would flatter p99)."""
        self._outcomes[outcome].inc()
        if seconds is not None:
            self._duration.observe(seconds)

    def scored(self, batch: Batch) -> None:
        """Count a scored batch (rows, and every feature value into its reference bin) until the next flush.

        Counting is a few numpy calls per batch, whatever the number of features; the Prometheus
        counters are brought up to date by `flush` (every second, and before each scrape).
        """
        if batch.rows == 0 or not self._features:
            with self._lock:
                self._pending_rows += batch.rows
            return
        matrix = batch.matrix
        if matrix is not None and matrix.size <= SMALL_BATCH and len(self._numeric) == len(self._features):
            self._scored_small(matrix)
            return
        ids: list[np.ndarray] = []
        nulls: list[tuple[int, int]] = []
        done: set[int] = set()
        if matrix is not None and self._numeric.size and matrix.size * self._edges.shape[1] <= VECTOR_LIMIT:
            values = matrix[:, self._numeric_columns]
            if not np.isnan(values).any():  # NaN compares false to every edge: those go the long way
                bins = (values[:, :, None] > self._edges[None, :, :]).sum(axis=2)
                ids.append((bins + self._offsets[self._numeric][None, :]).ravel())
                done = set(self._numeric.tolist())
        for k, feature in enumerate(self._features):
            if k in done:
                continue
            column = batch.column(feature.column)
            if feature.edges is not None and column.dtype.kind == "f":
                found, missing = numeric_bins(feature.edges, column)
            elif feature.values is not None:
                found, missing = categorical_bins(feature.values, column.tolist(), feature.integer)
            else:
                continue  # profile and signature disagree on the kind: do not guess
            ids.append(found + self._offsets[k])
            if missing:
                nulls.append((k, missing))
        counts = np.bincount(np.concatenate(ids), minlength=len(self._bin_children)) if ids else None
        with self._lock:  # the prediction thread counts too, for slow models
            self._pending_rows += batch.rows
            if counts is not None:
                self._pending_bins += counts
            for k, missing in nulls:
                self._pending_nulls[k] += missing

    def _scored_small(self, matrix: np.ndarray) -> None:
        """A few rows of numeric features: bisect on Python floats beats a dozen numpy calls (~3 vs ~18 us)."""
        columns = self._numeric_columns.tolist()
        with self._lock:
            self._pending_rows += matrix.shape[0]
            for row in matrix.tolist():
                for k, (column, edges, offset) in enumerate(
                    zip(columns, self._edge_lists, self._offset_list, strict=True)
                ):
                    value = row[column]
                    if value != value:  # NaN: a null, not binned (profile.py's rule)
                        self._pending_nulls[k] += 1
                    else:
                        self._pending_bins[offset + bisect_left(edges, value)] += 1

    def flush(self) -> None:
        """Move the counts gathered since the last flush into the Prometheus counters."""
        with self._lock:
            rows, self._pending_rows = self._pending_rows, 0
            bins, self._pending_bins = self._pending_bins, np.zeros_like(self._pending_bins)
            nulls, self._pending_nulls = self._pending_nulls, np.zeros_like(self._pending_nulls)
        if rows:
            self._rows.inc(rows)
        for i in np.flatnonzero(bins).tolist():
            self._bin_children[i].inc(int(bins[i]))
        for k in np.flatnonzero(nulls).tolist():
            self._features[k].nulls.inc(int(nulls[k]))

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition of every worker's metrics (merged in multiprocess mode)."""
        self.flush()
        path = multiprocess_dir()
        if path is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=path)
        return generate_latest(registry), CONTENT_TYPE_LATEST


class FeedbackMetrics:
    """Counters of labelled predictions (feedback.py): version and track are the id's, model and deployment ours."""

    def __init__(self, registry: CollectorRegistry, static: dict[str, str]) -> None:
        self._model, self._deployment, self._track = static["model"], static["deployment"], static["track"]
        self.version = ""  # of the model this server serves: the labels of what it rejects
        self.outcomes = Counter(
            _base(contract.METRIC_FEEDBACK),
            "Classification labels by whether the prediction was right.",
            [*LABELS, "outcome"],
            registry=registry,
        )
        self.confusion = Counter(
            _base(contract.METRIC_FEEDBACK_CONFUSION),
            "Classification labels by true and predicted class (classes the model does not know: __other__).",
            [*LABELS, "true_class", "predicted_class"],
            registry=registry,
        )
        self.absolute_error = Histogram(
            contract.METRIC_FEEDBACK_ABSOLUTE_ERROR,
            "Regression labels: |prediction - label|.",
            LABELS,
            buckets=ERROR_BUCKETS,
            registry=registry,
        )
        self.squared_error = Counter(
            _base(contract.METRIC_FEEDBACK_SQUARED_ERROR),
            "Regression labels: sum of (prediction - label)^2.",
            LABELS,
            registry=registry,
        )
        self.overprediction = Counter(
            _base(contract.METRIC_FEEDBACK_OVERPREDICTION),
            "Regression labels: sum of prediction - label where > 0.",
            LABELS,
            registry=registry,
        )
        self.underprediction = Counter(
            _base(contract.METRIC_FEEDBACK_UNDERPREDICTION),
            "Regression labels: sum of label - prediction where > 0.",
            LABELS,
            registry=registry,
        )
        self.rejected_items = Counter(
            _base(contract.METRIC_FEEDBACK_REJECTED),
            "Feedback items refused, by reason (labels: the refusing server's version and track).",
            [*LABELS, "reason"],
            registry=registry,
        )
        self.unsigned = Counter(
            _base(contract.METRIC_PREDICTION_IDS_FAILED),
            "Predictions answered without an id because minting it failed (the server's log says why).",
            LABELS,
            registry=registry,
        )
        # Label children by label values: .labels() builds and hashes a tuple of strings each time.
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, family: Any, *values: str) -> Any:
        key = (family, *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = family.labels(*values)  # in the family's label order
        return child

    def start_at_zero(self, version: str) -> None:
        """Export this server's own (version, track) series at 0 before any label: Prometheus' increase()
        cannot see a counter's first value, so a series born at 120 would lose those 120 labels."""
        ids = (self._model, version, self._track, self._deployment)
        for outcome in (contract.FEEDBACK_CORRECT, contract.FEEDBACK_INCORRECT):
            self._child(self.outcomes, *ids, outcome)
        for family in (self.absolute_error, self.squared_error, self.overprediction, self.underprediction):
            self._child(family, *ids)

    def classified(
        self, version: str, track: str, true_class: str, predicted_class: str, correct: bool, count: int = 1
    ) -> None:
        """`count` classification labels alike (classes already bounded to what the model knows)."""
        outcome = contract.FEEDBACK_CORRECT if correct else contract.FEEDBACK_INCORRECT
        ids = (self._model, version, track, self._deployment)
        self._child(self.outcomes, *ids, outcome).inc(count)
        self._child(self.confusion, *ids, true_class, predicted_class).inc(count)

    def regressed(self, version: str, track: str, errors: list[float]) -> None:
        """Regression labels of one version and track; each error is prediction - label, finite."""
        ids = (self._model, version, track, self._deployment)
        histogram = self._child(self.absolute_error, *ids)
        for error in errors:
            histogram.observe(abs(error))
        self._child(self.squared_error, *ids).inc(sum(e * e for e in errors))
        over = sum(e for e in errors if e > 0)
        under = -sum(e for e in errors if e < 0)
        if over:
            self._child(self.overprediction, *ids).inc(over)
        if under:
            self._child(self.underprediction, *ids).inc(under)

    def ids_failed(self, rows: int) -> None:
        """`rows` predictions answered without ids."""
        self._child(self.unsigned, self._model, self.version, self._track, self._deployment).inc(rows)

    def rejected(self, reason: str, count: int = 1) -> None:
        """Items refused for `reason`."""
        self._child(self.rejected_items, self._model, self.version, self._track, self._deployment, reason).inc(count)
