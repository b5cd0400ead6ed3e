"""Drift statistics, pure: live bin counts of each feature against the reference profile's bins.

The model server counts every scored value into the bins of the reference profile (profile.py), so
drift is a comparison of two histograms over the same bins: the training data's (`counts`, plus
`nulls`) and live traffic's (Prometheus `increase()` per bin, summed across replicas).

Methods, each a number that grows with the difference:
- `psi`: population stability index, sum((a - e) * ln(a / e)). Standard bands: < 0.1 stable,
  0.1-0.25 moderate, > 0.25 significant.
- `js`: Jensen-Shannon distance (base 2, so in [0, 1]); scipy's `jensenshannon(p, q, base=2)`.
- `ks`: the Kolmogorov-Smirnov statistic on the binned CDFs (ordered numeric bins); for a
  categorical feature, whose bins have no order, the total variation distance, which is the
  largest difference in probability over any set of categories (KS's analogue).

Empty bins would make PSI infinite; every bin of both histograms gets an additive pseudo-count of
SMOOTHING (Jeffreys' 0.5) before proportions are taken. Pure Python: the operator image has no numpy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

# The defaults by method live with the API (spec.monitoring.drift.threshold): one source of defaults.
from .api.monitoring import DEFAULT_DRIFT_THRESHOLDS as DEFAULT_THRESHOLDS

Method = Literal["psi", "js", "ks"]
METHODS: tuple[Method, ...] = ("psi", "js", "ks")
SMOOTHING = 0.5
NULL_BIN = "__null__"
OTHER_BIN = "__other__"  # profile.py's trailing categorical bin (kept equal by a unit test)

# PSI's conventional bands (upper bounds): stable below 0.1, moderate to 0.25, significant above.
PSI_BANDS: tuple[tuple[float, str], ...] = ((0.1, "stable"), (0.25, "moderate"), (math.inf, "significant"))


def bin_labels(feature: Mapping[str, Any]) -> list[str]:
    """The server's label for each bin of a profile feature (same rule as profile.bin_labels)."""
    if feature["kind"] == "categorical":
        return [*feature["values"], OTHER_BIN]
    edges = feature["edges"]
    return [f"le_{e:g}" for e in edges] + ([f"gt_{edges[-1]:g}"] if edges else ["all"])


def proportions(counts: Sequence[float], smoothing: float = SMOOTHING) -> list[float]:
    """Counts to proportions after adding `smoothing` to every bin."""
    total = sum(counts) + smoothing * len(counts)
    if total <= 0:
        raise ValueError("a histogram with no counts and no smoothing has no proportions")
    return [(c + smoothing) / total for c in counts]


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Population stability index of two proportion vectors (every entry > 0)."""
    return sum((a - e) * math.log(a / e) for e, a in zip(expected, actual, strict=True))


def js_distance(p: Sequence[float], q: Sequence[float]) -> float:
    """Jensen-Shannon distance, base 2 (0 identical, 1 disjoint)."""

    def kl(x: Sequence[float], m: Sequence[float]) -> float:
        return sum(xi * math.log2(xi / mi) for xi, mi in zip(x, m, strict=True) if xi > 0)

    mid = [(a + b) / 2 for a, b in zip(p, q, strict=True)]
    return math.sqrt(max(0.0, (kl(p, mid) + kl(q, mid)) / 2))


def ks_binned(p: Sequence[float], q: Sequence[float]) -> float:
    """Largest distance between the two cumulative distributions over ordered bins."""
    gap, cum_p, cum_q = 0.0, 0.0, 0.0
    for a, b in zip(p, q, strict=True):
        cum_p, cum_q = cum_p + a, cum_q + b
        gap = max(gap, abs(cum_p - cum_q))
    return gap


def total_variation(p: Sequence[float], q: Sequence[float]) -> float:
    """Half the L1 distance: the largest probability difference over any set of bins."""
    return sum(abs(a - b) for a, b in zip(p, q, strict=True)) / 2


def score(method: str, reference: Sequence[float], live: Sequence[float], ordered: bool = True) -> float:
    """The drift score of one feature from its reference and live bin counts (same bins, same order)."""
    if method == "psi":
        return psi(proportions(reference), proportions(live))
    if method == "js":
        return js_distance(proportions(reference), proportions(live))
    if method == "ks":
        # No smoothing: CDF differences are finite anyway, and pseudo-counts would bias them.
        p, q = proportions(reference, 0.0), proportions(live, 0.0)
        return ks_binned(p, q) if ordered else total_variation(p, q)
    raise ValueError(f"unknown drift method {method!r}; use one of {', '.join(METHODS)}")


def psi_band(value: float) -> str:
    """'stable', 'moderate' or 'significant' by the conventional PSI bands."""
    return next(name for bound, name in PSI_BANDS if value < bound)


def default_threshold(method: str) -> float:
    """The threshold used when the spec sets none."""
    return DEFAULT_THRESHOLDS[method]


def reference_histogram(feature: Mapping[str, Any]) -> dict[str, float]:
    """A profile feature's counts by server bin label, with a null bin when the training data had nulls."""
    counts = dict(zip(bin_labels(feature), (float(c) for c in feature["counts"]), strict=True))
    counts[NULL_BIN] = float(feature.get("nulls") or 0)
    return counts


@dataclass(frozen=True)
class FeatureScore:
    """One feature's drift score over the window, and how many live values it rests on."""

    feature: str
    score: float
    samples: int


@dataclass(frozen=True)
class DriftReport:
    """Per-feature scores (highest first) of the features with enough samples, and why others have none."""

    method: str
    scores: list[FeatureScore] = field(default_factory=list)
    samples: int = 0  # live values of the best-covered feature
    message: str = ""

    @property
    def top(self) -> FeatureScore | None:
        """The most drifted feature, if any feature could be judged."""
        return self.scores[0] if self.scores else None


def drift_report(
    profile: Mapping[str, Any],
    live: Mapping[str, Mapping[str, float]],
    method: str,
    min_samples: int,
) -> DriftReport:
    """Score every profiled feature whose live window holds at least `min_samples` values.

    `live` maps feature -> bin label -> count (NULL_BIN for nulls); labels the profile does not know are
    ignored. With fewer samples there is no verdict: at 100 samples and 10 bins a 0.1 PSI rule fires on
    identical data most of the time.
    """
    scores, best = [], 0
    for name, feature in sorted((profile.get("features") or {}).items()):
        reference = reference_histogram(feature)
        window = live.get(name) or {}
        observed = [max(0.0, float(window.get(label, 0.0))) for label in reference]
        samples = round(sum(observed))
        best = max(best, samples)
        if samples < min_samples:
            continue
        if reference[NULL_BIN] == 0 and observed[-1] == 0:  # no nulls on either side: leave the bin out
            ref_counts, live_counts = list(reference.values())[:-1], observed[:-1]
        else:
            ref_counts, live_counts = list(reference.values()), observed
        value = score(method, ref_counts, live_counts, ordered=feature["kind"] != "categorical")
        scores.append(FeatureScore(name, value, samples))
    scores.sort(key=lambda s: (-s.score, s.feature))
    if scores:
        message = f"{len(scores)} feature(s) scored on up to {best} samples"
    else:
        message = f"{best} samples in the window, fewer than minSamples {min_samples}: no verdict"
    return DriftReport(method=method, scores=scores, samples=best, message=message)
