"""Live model quality from one window's label counts, and what it means: pure, no Prometheus, no Kubernetes.

The model server counts labelled feedback per (deployment, version, track); the operator reads the
`increase()` of those counters over a window and hands the numbers here. Prometheus can return NaN (no
samples) and, around a counter reset, a negative increase; either is missing data, never a zero, and the
reason says which. Defaults live with the API models; every threshold here is a parameter.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .qualitytests import difference_score, labels_needed, mann_whitney_binned, normal_sf, scale_histogram

Metric = Literal["accuracy", "f1", "precision", "recall", "rmse", "mae"]
CLASSIFICATION_METRICS: tuple[Metric, ...] = ("accuracy", "f1", "precision", "recall")
REGRESSION_METRICS: tuple[Metric, ...] = ("rmse", "mae")
# Higher is better for the classification metrics, lower for the errors: the bound a metric takes by default.
HIGHER_IS_BETTER = frozenset(CLASSIFICATION_METRICS)

State = Literal["ok", "degraded", "insufficient"]


def _bad(value: float | None, name: str) -> str | None:
    """Why a counter increase is unusable, if it is: absent, NaN, or negative (a counter reset in the window)."""
    if value is None:
        return f"no {name} in the window"
    if math.isnan(value):
        return f"{name} is NaN (no samples in the window)"
    if value < 0:
        return f"{name} decreased ({value:g}): a counter reset in the window"
    return None


@dataclass(frozen=True)
class ClassificationCounts:
    """One window of classification feedback: the confusion matrix, or only correct and total when it is absent."""

    confusion: Mapping[tuple[str, str], float] = field(default_factory=dict)  # (true, predicted) -> labels
    correct: float | None = None
    total: float | None = None

    @property
    def missing(self) -> str | None:
        """Why these counts cannot be used, or None."""
        if self.confusion:
            for (true, predicted), count in self.confusion.items():
                if reason := _bad(count, f"confusion count ({true!r}, {predicted!r})"):
                    return reason
            return None
        return _bad(self.correct, "correct count") or _bad(self.total, "label count")

    @property
    def labels(self) -> float:
        """Labels in the window (0 when the counts are missing)."""
        if self.missing:
            return 0.0
        return float(sum(self.confusion.values())) if self.confusion else float(self.total or 0.0)

    @property
    def right(self) -> float:
        """Correct predictions in the window (0 when the counts are missing)."""
        if self.missing:
            return 0.0
        if self.confusion:
            return float(sum(c for (true, predicted), c in self.confusion.items() if true == predicted))
        return min(float(self.correct or 0.0), self.labels)  # the two counters are scraped apart: never above 1


@dataclass(frozen=True)
class RegressionCounts:
    """One window of regression feedback: labels, the sums of |error| and error², and the |error| histogram."""

    count: float | None = None
    abs_error_sum: float | None = None
    squared_error_sum: float | None = None
    buckets: Sequence[tuple[float, float]] = ()  # cumulative (le, count) as Prometheus exports them, +Inf last

    @property
    def missing(self) -> str | None:
        """Why these counts cannot be used, or None."""
        return _bad(self.count, "label count") or _bad(self.abs_error_sum, "absolute-error sum")

    @property
    def labels(self) -> float:
        """Labels in the window (0 when the counts are missing)."""
        return 0.0 if self.missing else float(self.count or 0.0)

    def histogram(self) -> tuple[list[float], list[float]] | str:
        """(upper edges, per-bucket counts) from the cumulative buckets, or why they are unusable."""
        pairs = sorted(self.buckets)
        if not pairs or not math.isinf(pairs[-1][0]):
            return "no |error| histogram with a +Inf bucket in the window"
        edges, counts, previous = [], [], 0.0
        for le, cumulative in pairs:
            if reason := _bad(cumulative, f"|error| bucket le={le:g}"):
                return reason
            if cumulative < previous:
                return f"|error| bucket le={le:g} below the one before it: a counter reset in the window"
            edges.append(le)
            counts.append(cumulative - previous)
            previous = cumulative
        if edges[0] <= 0 or len(set(edges)) != len(edges):
            return "|error| bucket bounds must be positive and distinct"
        return edges, counts


@dataclass(frozen=True)
class Measured:
    """A metric's value over a window and the labels it rests on; value None when there is none (and why)."""

    metric: Metric
    value: float | None
    labels: float
    reason: str | None = None
    label_name: str = "labels"  # what `labels` counts, e.g. "labels of class 'spam'"


def _classification(counts: ClassificationCounts, metric: Metric, positive: str | None) -> Measured:
    total = counts.labels
    if metric == "accuracy":
        return Measured(metric, counts.right / total if total else None, total, None if total else "no labels")
    if not counts.confusion:
        return Measured(metric, None, total, f"{metric} needs the confusion counts, which the window lacks")
    seen = [key for key, count in counts.confusion.items() if count > 0]  # a zero increase is a class not seen
    classes = sorted({t for t, _ in seen} | {p for _, p in seen})
    tp = {c: 0.0 for c in classes}
    true_n, predicted_n = dict(tp), dict(tp)
    for true, predicted in seen:
        count = counts.confusion[(true, predicted)]
        true_n[true] += count
        predicted_n[predicted] += count
        if true == predicted:
            tp[true] += count
    if metric == "f1":
        # sklearn's macro average over every class seen as true or predicted: one only predicted scores 0.
        scores = [2 * tp[c] / (true_n[c] + predicted_n[c]) for c in classes if true_n[c] + predicted_n[c] > 0]
        return Measured(metric, sum(scores) / len(scores) if scores else None, total, None if scores else "no labels")
    if positive is None:
        return Measured(metric, None, total, f"{metric} needs a class")
    support = (predicted_n if metric == "precision" else true_n).get(positive, 0.0)
    name = f"predictions of class {positive!r}" if metric == "precision" else f"labels of class {positive!r}"
    if not support:
        return Measured(metric, None, 0.0, f"no {name} in the window", name)
    return Measured(metric, tp.get(positive, 0.0) / support, support, None, name)


def measure(counts: ClassificationCounts | RegressionCounts, metric: Metric, positive: str | None = None) -> Measured:
    """The metric's value over the window; `positive` names the class of precision and recall."""
    if reason := counts.missing:
        return Measured(metric, None, 0.0, reason)
    if isinstance(counts, ClassificationCounts):
        if metric not in CLASSIFICATION_METRICS:
            return Measured(metric, None, counts.labels, f"{metric} is a regression metric; the feedback is classes")
        return _classification(counts, metric, positive)
    if metric not in REGRESSION_METRICS:
        return Measured(metric, None, counts.labels, f"{metric} is a classification metric; the feedback is errors")
    n = counts.labels
    if not n:
        return Measured(metric, None, 0.0, "no labels")
    if metric == "mae":
        return Measured(metric, float(counts.abs_error_sum or 0.0) / n, n)
    if reason := _bad(counts.squared_error_sum, "squared-error sum"):
        return Measured(metric, None, n, reason)
    return Measured(metric, math.sqrt(float(counts.squared_error_sum or 0.0) / n), n)


@dataclass(frozen=True)
class PerformanceVerdict:
    """One window's judgement: ok, degraded (after `consecutive` windows beyond the bound) or insufficient."""

    state: State
    metric: Metric
    value: float | None
    labels: float
    consecutive: int  # windows in a row beyond the bound, this one included (kept on an insufficient one)
    breached: bool  # this window is beyond the bound
    message: str


def _labels(n: float) -> str:
    return f"{round(n):,}"


def judge_performance(
    window: Measured | ClassificationCounts | RegressionCounts,
    metric: Metric,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    min_labels: int,
    consecutive: int,
    previous_consecutive: int = 0,
    positive: str | None = None,
) -> PerformanceVerdict:
    """Judge one window against min and/or max; degraded once `consecutive` windows in a row are beyond.

    A window with fewer than `min_labels` (or no value) gives no verdict: it neither counts nor breaks the run.
    """
    if minimum is None and maximum is None:
        raise ValueError("a performance bound needs a minimum or a maximum")
    measured = window if isinstance(window, Measured) else measure(window, metric, positive)
    name = metric if positive is None or metric not in ("precision", "recall") else f"{metric} of {positive!r}"
    run = max(0, previous_consecutive)
    if measured.value is None or measured.labels < min_labels:
        why = measured.reason or f"{_labels(measured.labels)} of {min_labels:,} {measured.label_name} needed"
        message = f"{name}: {why}: no verdict"
        return PerformanceVerdict("insufficient", metric, measured.value, measured.labels, run, False, message)
    value = measured.value
    below = minimum is not None and value < minimum
    above = maximum is not None and value > maximum
    over = f"over {_labels(measured.labels)} {measured.label_name}"
    if not (below or above):
        bounds = " and ".join(f"{w} {b:g}" for w, b in (("min", minimum), ("max", maximum)) if b is not None)
        message = f"{name} {value:.3f} within {bounds} {over}"
        return PerformanceVerdict("ok", metric, value, measured.labels, 0, False, message)
    run += 1
    bound = f"< min {minimum:g}" if below else f"> max {maximum:g}"
    windows = "window" if run == 1 else "windows"
    streak = f"{run} {windows} in a row" if run >= consecutive else f"{run} of {consecutive} windows in a row"
    state: State = "degraded" if run >= consecutive else "ok"
    message = f"{name} {value:.3f} {bound} {over} ({streak})"
    return PerformanceVerdict(state, metric, value, measured.labels, run, True, message)


CanaryState = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class CanaryVerdict:
    """The canary's quality against the stable track's over the same window, by a non-inferiority test.

    `statistic` is the test's z (positive favours the canary); `p_value` is the one-sided p of H0 "the
    canary is worse than stable by more than the margin"; pass below alpha, fail when the mirror test is.
    """

    state: CanaryState
    test: str
    metric: Metric
    statistic: float | None
    p_value: float | None
    canary_value: float | None
    stable_value: float | None
    canary_labels: float
    stable_labels: float
    margin: float
    alpha: float  # of a pass (per look)
    fail_alpha: float  # of a fail
    message: str


def _verdict(
    test: str,
    metric: Metric,
    z: float | None,
    values: tuple[float | None, float | None],
    labels: tuple[float, float],
    margin_text: str,
    margin: float,
    alphas: tuple[float, float],
    why: str | None = None,
) -> CanaryVerdict:
    """pass when z shows non-inferiority at alpha, fail when the mirror test shows inferiority, else inconclusive."""
    alpha, fail_alpha = alphas
    (cv, sv), (cn, sn) = values, labels
    shown = " vs ".join(
        f"{track} {'n/a' if v is None else f'{v:.3f}'} ({_labels(n)} labels)"
        for track, v, n in (("canary", cv, cn), ("stable", sv, sn))
    )
    if z is None:
        message = f"{metric} {shown}: {why}: inconclusive"
        return CanaryVerdict(
            "inconclusive", test, metric, None, None, cv, sv, cn, sn, margin, alpha, fail_alpha, message
        )
    p_within, p_worse = normal_sf(z), normal_sf(-z)
    if p_within < alpha:
        state: CanaryState = "pass"
        found = f"not worse than stable by {margin_text} (z {z:.2f}, p {p_within:.2g} < {alpha:.2g})"
    elif p_worse < fail_alpha:
        state = "fail"
        found = f"worse than stable by more than {margin_text} (z {z:.2f}, p {p_worse:.2g} < {fail_alpha:.2g})"
    else:
        state = "inconclusive"
        found = f"within {margin_text} not shown yet (z {z:.2f}, p {p_within:.2g} >= {alpha:.2g}){why or ''}"
    return CanaryVerdict(
        state, test, metric, z, p_within, cv, sv, cn, sn, margin, alpha, fail_alpha, f"{metric} {shown}: {found}"
    )


def compare_accuracy(
    canary: ClassificationCounts,
    stable: ClassificationCounts,
    *,
    max_degradation: float,
    alpha: float,
    min_labels: int,
    fail_alpha: float | None = None,
) -> CanaryVerdict:
    """Farrington-Manning test of "canary accuracy >= stable's - max_degradation" (points, e.g. 0.04).

    A pass needs p < alpha; a fail p < fail_alpha (default alpha) in the mirror test.
    """
    test, margin_text = "farrington-manning", f"{max_degradation:g}"
    alphas = (alpha, alpha if fail_alpha is None else fail_alpha)
    values = (measure(canary, "accuracy").value, measure(stable, "accuracy").value)
    labels = (canary.labels, stable.labels)
    if reason := canary.missing or stable.missing:
        return _verdict(test, "accuracy", None, values, labels, margin_text, max_degradation, alphas, reason)
    if min(labels) < max(1, min_labels):
        why = f"{min_labels:,} labels on each track needed"
        return _verdict(test, "accuracy", None, values, labels, margin_text, max_degradation, alphas, why)
    (xc, xs), (nc, ns) = (canary.right, stable.right), labels
    z = difference_score(xc, nc, xs, ns, -max_degradation)
    needed = labels_needed(xs / ns, max_degradation, alpha, ratio=ns / nc)
    hint = f"; about {needed:,} canary labels needed at this split" if needed > nc else ""
    return _verdict(test, "accuracy", z, values, labels, margin_text, max_degradation, alphas, hint)


def compare_errors(
    canary: RegressionCounts,
    stable: RegressionCounts,
    *,
    max_degradation: float,
    alpha: float,
    min_labels: int,
    fail_alpha: float | None = None,
) -> CanaryVerdict:
    """Mann-Whitney test of "canary |errors| <= (1 + max_degradation) x stable's" on the binned histograms.

    The margin is relative (0.1: 10 % larger errors); pass and fail as compare_accuracy's.
    """
    test, margin_text = "mann-whitney", f"{100 * max_degradation:g} % in |error|"
    alphas = (alpha, alpha if fail_alpha is None else fail_alpha)
    values = (measure(canary, "mae").value, measure(stable, "mae").value)
    ours, theirs = canary.histogram(), stable.histogram()
    if isinstance(ours, str) or isinstance(theirs, str):
        why = f"canary {ours}" if isinstance(ours, str) else f"stable {theirs}"
        labels = (canary.labels, stable.labels)
        return _verdict(test, "mae", None, values, labels, margin_text, max_degradation, alphas, why)
    labels = (float(sum(ours[1])), float(sum(theirs[1])))
    if ours[0] != theirs[0]:
        why = "the tracks' |error| buckets differ"
        return _verdict(test, "mae", None, values, labels, margin_text, max_degradation, alphas, why)
    if max_degradation < 0:
        raise ValueError("max_degradation must be >= 0")
    if min(labels) < max(1, min_labels):
        why = f"{min_labels:,} labels on each track needed"
        return _verdict(test, "mae", None, values, labels, margin_text, max_degradation, alphas, why)
    scaled = scale_histogram(ours[0], theirs[1], 1.0 + max_degradation)
    z = mann_whitney_binned(ours[1], scaled).z(greater=False)
    return _verdict(test, "mae", z, values, labels, margin_text, max_degradation, alphas)
