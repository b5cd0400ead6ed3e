"""Labelled-feedback readings (Prometheus series per version and track) into what planning/quality.py judges.

The model server counts each label under the version and track in its prediction id; one query per
reading returns every (version, track) at once, and these functions pick one version (every track, for
monitoring) or one (version, track) (a canary comparison) out of them. No series at all is "no labels
in the window", never zero counts that would read as a measured value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

from ..contract import FEEDBACK_CORRECT, FEEDBACK_INCORRECT
from .quality import ClassificationCounts, Measured, Metric, RegressionCounts, measure

Series = list[tuple[dict[str, str], float]]
Readings = Mapping[str, Series]  # reading name (integrations/prometheus.feedback_queries) -> series
Needs = Literal["outcomes", "confusion", "errors"]


def needs_of(metric: Metric) -> Needs:
    """Which feedback reading a metric is computed from."""
    if metric == "accuracy":
        return "outcomes"
    if metric in ("f1", "precision", "recall"):
        return "confusion"
    return "errors"


def _mine(labels: dict[str, str], version: int, track: str | None) -> bool:
    return labels.get("version") == str(version) and (track is None or labels.get("track") == track)


def _total(readings: Readings, name: str, version: int, track: str | None) -> float | None:
    values = [v for labels, v in readings.get(name, []) if _mine(labels, version, track)]
    return float(sum(values)) if values else None


def counts_of(
    readings: Readings, needs: Needs, version: int, track: str | None = None
) -> ClassificationCounts | RegressionCounts | None:
    """One version's counts (of one track, or summed over its tracks); None when no label of it is in the window."""
    if needs == "outcomes":
        outcomes: dict[str, float] = {}
        for labels, value in readings.get("outcomes", []):
            if _mine(labels, version, track):
                outcome = labels.get("outcome", "")
                outcomes[outcome] = outcomes.get(outcome, 0.0) + value
        if not outcomes:
            return None
        right, wrong = outcomes.get(FEEDBACK_CORRECT, 0.0), outcomes.get(FEEDBACK_INCORRECT, 0.0)
        return ClassificationCounts(correct=right, total=right + wrong)
    if needs == "confusion":
        confusion: dict[tuple[str, str], float] = {}
        for labels, value in readings.get("confusion", []):
            if _mine(labels, version, track):
                cell = (labels.get("true_class", ""), labels.get("predicted_class", ""))
                confusion[cell] = confusion.get(cell, 0.0) + value
        return ClassificationCounts(confusion=confusion) if confusion else None
    count = _total(readings, "count", version, track)
    if count is None:
        return None
    buckets: dict[float, float] = {}
    for labels, value in readings.get("buckets", []):
        if _mine(labels, version, track):
            try:
                le = float(labels.get("le", "nan"))
            except ValueError:
                continue  # not a bucket bound: the histogram check below names what is missing
            if not math.isnan(le):
                buckets[le] = buckets.get(le, 0.0) + value
    return RegressionCounts(
        count=count,
        abs_error_sum=_total(readings, "abs_sum", version, track),
        squared_error_sum=_total(readings, "squared_sum", version, track),
        buckets=sorted(buckets.items()),
    )


def measure_version(
    readings: Readings, metric: Metric, version: int, track: str | None = None, positive: str | None = None
) -> Measured:
    """The metric over the window for a version (or one of its tracks); no labels is a reason, not a zero."""
    counts = counts_of(readings, needs_of(metric), version, track)
    if counts is None:
        return Measured(metric, None, 0.0, "no labels in the window")
    return measure(counts, metric, positive)


def labelled_tracks(readings: Readings) -> list[tuple[int, str]]:
    """Every (version, track) with labels in the readings, in order."""
    seen = set()
    for series in readings.values():
        for labels, _ in series:
            version, track = labels.get("version", ""), labels.get("track", "")
            if version.isdigit() and track:
                seen.add((int(version), track))
    return sorted(seen)
