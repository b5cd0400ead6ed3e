"""The statistics behind the canary's quality comparison, pure Python (the operator image has no numpy or scipy).

- Accuracy: the Farrington-Manning score test of a difference of two proportions against a margin. Its
  variance is taken at the restricted maximum-likelihood estimate under H0 (p_canary - p_stable = -margin),
  the non-inferiority analogue of the pooled variance: the pooled estimate assumes equal proportions, which
  is not H0 here, and the unpooled (Wald) one collapses to zero when a track has no errors yet (an accuracy
  of 1.0 over 80 labels is common at a 95 % model), which would make any small sample "significant".
- Errors: the Mann-Whitney U test on binned |error| histograms (the buckets are the ties), with the tie
  correction and the normal approximation; a relative margin scales the stable track's errors by
  (1 + margin) and spreads each scaled bucket over the common buckets (uniform in log(value) within a bucket).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

_STANDARD = NormalDist()


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z, accurate far into the tail (math.erfc, not 1 - cdf)."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def normal_isf(p: float) -> float:
    """The z with P(Z > z) = p."""
    return -_STANDARD.inv_cdf(p)


def per_look_alpha(alpha: float, looks: int) -> float:
    """The significance of each of `looks` looks whose union is at most `alpha` (linear alpha spending)."""
    return alpha / max(1, looks)


def max_looks(interval_seconds: float, pause_seconds: float, deadline_seconds: float) -> int:
    """Analyses a canary step can run: one per interval, the first after the deadline included (it is judged first)."""
    return max(1, int((pause_seconds + deadline_seconds) // max(1e-9, interval_seconds)) + 1)


def restricted_proportions(x1: float, n1: float, x2: float, n2: float, delta: float) -> tuple[float, float]:
    """Maximum-likelihood (p1, p2) subject to p1 - p2 = delta (Farrington and Manning 1990, closed form)."""
    p1, p2, theta = x1 / n1, x2 / n2, n2 / n1
    a = 1.0 + theta
    b = -(1.0 + theta + p1 + theta * p2 + delta * (theta + 2.0))
    c = delta * delta + delta * (2.0 * p1 + theta + 1.0) + p1 + theta * p2
    d = -p1 * delta * (1.0 + delta)
    v = b**3 / (3.0 * a) ** 3 - b * c / (6.0 * a * a) + d / (2.0 * a)
    root = b * b / (3.0 * a) ** 2 - c / (3.0 * a)
    u = math.copysign(math.sqrt(max(0.0, root)), v)
    if abs(u) < 1e-15:
        r1 = -b / (3.0 * a)
    else:
        w = (math.pi + math.acos(max(-1.0, min(1.0, v / u**3)))) / 3.0
        r1 = 2.0 * u * math.cos(w) - b / (3.0 * a)
    r1 = min(1.0, max(0.0, r1))
    return r1, min(1.0, max(0.0, r1 - delta))


def difference_score(x1: float, n1: float, x2: float, n2: float, delta: float) -> float:
    """The Farrington-Manning z of H0 p1 - p2 = delta: large when p1 - p2 is above delta."""
    r1, r2 = restricted_proportions(x1, n1, x2, n2, delta)
    variance = r1 * (1.0 - r1) / n1 + r2 * (1.0 - r2) / n2
    excess = x1 / n1 - x2 / n2 - delta
    if variance <= 0.0:  # both tracks all right (or all wrong) and delta 0: no evidence either way
        return 0.0 if abs(excess) < 1e-12 else math.copysign(math.inf, excess)
    return excess / math.sqrt(variance)


def labels_needed(p: float, margin: float, alpha: float, power: float = 0.8, ratio: float = 1.0) -> int:
    """Canary labels for an equal candidate of accuracy p to show non-inferiority with this power.

    `ratio` is stable labels per canary label (9 at a 10 % canary).
    """
    if margin <= 0.0:
        return 0
    z = normal_isf(alpha) + normal_isf(1.0 - power)
    variance = max(p * (1.0 - p), 1e-4) * (1.0 + 1.0 / max(ratio, 1e-9))
    return math.ceil(z * z * variance / (margin * margin))


@dataclass(frozen=True)
class RankTest:
    """Mann-Whitney U of x against y over ordered bins: U counts pairs with x above y (ties count half)."""

    u: float
    n_x: float
    n_y: float
    sd: float  # of U under H0, tie-corrected

    @property
    def mean(self) -> float:
        """E[U] when x and y have the same distribution."""
        return self.n_x * self.n_y / 2.0

    def z(self, greater: bool, continuity: bool = True) -> float:
        """The normal z of U for the alternative "x stochastically greater" (or less), as scipy computes it."""
        if self.sd <= 0.0:
            return 0.0
        shift = 0.5 if continuity else 0.0
        excess = self.u - self.mean - shift if greater else self.mean - self.u - shift
        return excess / self.sd

    def p_value(self, greater: bool, continuity: bool = True) -> float:
        """One-sided p-value of the alternative "x stochastically greater than y" (or less)."""
        return normal_sf(self.z(greater, continuity)) if self.sd > 0.0 else 1.0


def mann_whitney_binned(x: Sequence[float], y: Sequence[float]) -> RankTest:
    """U of x against y from counts in the same ordered bins (counts may be fractional)."""
    n_x, n_y = float(sum(x)), float(sum(y))
    u = ties = below = 0.0
    for count_x, count_y in zip(x, y, strict=True):
        u += count_x * (below + count_y / 2.0)
        below += count_y
        t = count_x + count_y
        ties += t**3 - t
    n = n_x + n_y
    if n_x <= 0.0 or n_y <= 0.0 or n < 2.0:
        return RankTest(u, n_x, n_y, 0.0)
    variance = n_x * n_y / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)))
    return RankTest(u, n_x, n_y, math.sqrt(max(0.0, variance)))


def scale_histogram(edges: Sequence[float], counts: Sequence[float], factor: float) -> list[float]:
    """Counts of factor * value in the same buckets (upper bounds `edges`, the last +Inf).

    A bucket's values are taken as uniform in log(value), the first bucket's (from 0) as uniform, and the +Inf
    bucket stays there (factor >= 1). Uniform in value (histogram_quantile's assumption) overstates the mass
    that scaling pushes into the next bucket wherever the density falls, i.e. in every right tail, which made
    "the canary is within the margin" come out too often (11 % at a 5 % level on lognormal errors at the
    margin, 1/2.5/5 buckets); in log(value) it comes out at 1-5 % (tests/unit/test_plan_quality.py).
    """
    if factor < 1.0:
        raise ValueError("scale_histogram spreads values upwards only (factor >= 1)")
    out = [0.0] * len(edges)
    lower = 0.0
    for upper, count in zip(edges, counts, strict=True):
        lo, hi = lower * factor, upper * factor
        lower = upper
        if not count:
            continue
        if math.isinf(hi):
            out[-1] += count
            continue
        start = 0.0
        for j, edge in enumerate(edges):
            a, b = max(lo, start), min(hi, edge)
            if b > a:
                # Uniform in log(value) within a bucket; the first one, which starts at 0, uniform in value.
                out[j] += count * (math.log(b / a) / math.log(hi / lo) if lo > 0.0 else (b - a) / (hi - lo))
            if edge >= hi:
                break
            start = edge
    return out
