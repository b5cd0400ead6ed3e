"""Drift statistics against scipy and hand-computed values on known distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from mlops_operator import drift, profile
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp


def test_psi_by_hand_on_a_known_shift() -> None:
    expected, actual = [0.25, 0.25, 0.25, 0.25], [0.1, 0.2, 0.3, 0.4]
    by_hand = sum((a - e) * math.log(a / e) for e, a in zip(expected, actual, strict=True))
    assert drift.psi(expected, actual) == pytest.approx(by_hand)
    # (0.1-0.25)ln(0.4) + (0.2-0.25)ln(0.8) + (0.3-0.25)ln(1.2) + (0.4-0.25)ln(1.6)
    assert drift.psi(expected, actual) == pytest.approx(0.228217, abs=1e-6)
    assert drift.psi(expected, expected) == 0.0


def test_psi_is_symmetric_and_equals_the_sum_of_both_kl_divergences() -> None:
    p, q = np.array([0.5, 0.3, 0.2]), np.array([0.2, 0.3, 0.5])
    kl = lambda a, b: float(np.sum(a * np.log(a / b)))  # noqa: E731
    assert drift.psi(p, q) == pytest.approx(kl(p, q) + kl(q, p))
    assert drift.psi(p, q) == pytest.approx(drift.psi(q, p))


@pytest.mark.parametrize(
    ("actual", "band"),
    [
        ([0.26, 0.24, 0.25, 0.25], "stable"),  # 0.0016
        ([0.15, 0.25, 0.25, 0.35], "stable"),  # 0.1 ln(1/0.6) + 0.1 ln(1.4) = 0.0847
        ([0.10, 0.25, 0.25, 0.40], "moderate"),  # 0.15 ln(2.5) + 0.15 ln(1.6) = 0.2079
        ([0.05, 0.15, 0.30, 0.50], "significant"),
    ],
)
def test_psi_bands(actual: list[float], band: str) -> None:
    assert drift.psi_band(drift.psi([0.25] * 4, actual)) == band


def test_psi_band_edges() -> None:
    assert drift.psi_band(0.0) == "stable"
    assert drift.psi_band(0.0999) == "stable"
    assert drift.psi_band(0.1) == "moderate"
    assert drift.psi_band(0.2499) == "moderate"
    assert drift.psi_band(0.25) == "significant"
    assert drift.psi_band(3.0) == "significant"


def test_psi_of_normal_mean_shifts_lands_in_the_standard_bands() -> None:
    """Ten reference deciles of N(0,1) against N(delta,1): the textbook picture of the bands."""
    from scipy.stats import norm

    edges = norm.ppf(np.linspace(0, 1, 11)[1:-1])
    reference = [0.1] * 10

    def shifted(delta: float) -> list[float]:
        cdf = np.concatenate([[0.0], norm.cdf(edges - delta), [1.0]])
        return list(np.diff(cdf))

    assert drift.psi_band(drift.psi(reference, shifted(0.1))) == "stable"
    assert drift.psi_band(drift.psi(reference, shifted(0.4))) == "moderate"
    assert drift.psi_band(drift.psi(reference, shifted(1.0))) == "significant"
    # For normals PSI approaches delta^2 (the J-divergence); ten bins keep most of it.
    assert drift.psi(reference, shifted(0.5)) == pytest.approx(0.25, rel=0.15)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_js_distance_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p, q = rng.random(8), rng.random(8)
    p, q = p / p.sum(), q / q.sum()
    assert drift.js_distance(p, q) == pytest.approx(float(jensenshannon(p, q, base=2)), abs=1e-12)


def test_js_distance_bounds() -> None:
    assert drift.js_distance([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert drift.js_distance([1.0, 0.0], [0.0, 1.0]) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binned_ks_equals_scipy_ks_when_every_value_has_its_own_bin(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 10, 400), rng.integers(1, 11, 300)
    edges = [float(e) for e in range(10)]  # bin i holds exactly the value i (side=left), 10 -> last bin
    counts_a, counts_b = profile.numeric_counts(edges, a.astype(float)), profile.numeric_counts(edges, b.astype(float))
    assert drift.score("ks", counts_a, counts_b) == pytest.approx(ks_2samp(a, b).statistic, abs=1e-12)


def test_categorical_ks_is_total_variation_and_ignores_category_order() -> None:
    reference, live = [50, 30, 20], [20, 30, 50]
    assert drift.score("ks", reference, live, ordered=False) == pytest.approx(0.3)
    assert drift.score("ks", reference[::-1], live[::-1], ordered=False) == pytest.approx(0.3)
    assert drift.score("ks", reference, live, ordered=True) == pytest.approx(0.3)  # same here, not in general
    assert drift.score("ks", [1, 0, 1], [0, 2, 0], ordered=True) == pytest.approx(0.5)
    assert drift.score("ks", [1, 0, 1], [0, 2, 0], ordered=False) == pytest.approx(1.0)


def test_smoothing_keeps_psi_finite_when_a_bin_is_empty() -> None:
    value = drift.score("psi", [100, 100, 0], [0, 100, 100])
    assert math.isfinite(value) and value > 1.0
    assert drift.proportions([0, 2], 0.5) == pytest.approx([0.5 / 3, 2.5 / 3])
    with pytest.raises(ValueError):
        drift.proportions([0, 0], 0.0)


def test_unknown_method_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown drift method"):
        drift.score("wasserstein", [1], [1])


def test_bin_labels_agree_with_the_profile_module() -> None:
    numeric = profile.feature_profile(np.arange(100.0), categorical=False)
    categorical = profile.feature_profile(["a", "b", "b", None], categorical=True)
    empty = {"kind": "numeric", "edges": [], "counts": [3], "nulls": 0}
    for feature in (numeric, categorical, empty):
        assert drift.bin_labels(feature) == profile.bin_labels(feature)
    assert drift.OTHER_BIN == profile.OTHER_BIN


def _profile() -> dict:
    rng = np.random.default_rng(7)
    return {
        "features": {
            "x": profile.feature_profile(rng.normal(size=5000), categorical=False),
            "colour": profile.feature_profile(rng.choice(["red", "blue"], 5000), categorical=True),
        }
    }


def _live(prof: dict, x: np.ndarray, colours: list[str], x_nulls: int = 0) -> dict:
    fx, fc = prof["features"]["x"], prof["features"]["colour"]
    live_x = dict(zip(drift.bin_labels(fx), profile.numeric_counts(fx["edges"], x), strict=True))
    live_x[drift.NULL_BIN] = x_nulls
    labels = drift.bin_labels(fc)
    live_c = {label: 0.0 for label in labels}
    for colour in colours:
        live_c[labels[profile.categorical_bin(fc["values"], colour)]] += 1
    return {"x": live_x, "colour": live_c}


def test_report_ranks_features_and_names_the_drifted_one() -> None:
    prof, rng = _profile(), np.random.default_rng(8)
    live = _live(prof, rng.normal(1.0, 1.0, 2000), list(rng.choice(["red", "blue"], 2000)))
    report = drift.drift_report(prof, live, "psi", min_samples=1000)
    assert [s.feature for s in report.scores] == ["x", "colour"]
    assert report.top is not None and report.top.score > 0.25 and report.scores[1].score < 0.1
    assert report.samples == 2000


def test_report_gives_no_verdict_below_min_samples() -> None:
    prof, rng = _profile(), np.random.default_rng(9)
    live = _live(prof, rng.normal(3.0, 1.0, 999), list(rng.choice(["red"], 999)))
    report = drift.drift_report(prof, live, "psi", min_samples=1000)
    assert report.top is None and report.samples == 999
    assert "fewer than minSamples 1000" in report.message


def test_unseen_categories_and_nulls_count_as_drift() -> None:
    prof, rng = _profile(), np.random.default_rng(10)
    unseen = _live(prof, rng.normal(size=2000), ["green"] * 1000 + list(rng.choice(["red", "blue"], 1000)))
    report = drift.drift_report(prof, unseen, "psi", min_samples=1000)
    assert report.top is not None and report.top.feature == "colour" and report.top.score > 0.25
    nulls = _live(prof, rng.normal(size=1000), list(rng.choice(["red", "blue"], 2000)), x_nulls=1000)
    report = drift.drift_report(prof, nulls, "psi", min_samples=1000)
    assert report.top is not None and report.top.feature == "x" and report.top.score > 0.25


def test_every_method_scores_identical_histograms_as_zero_drift() -> None:
    prof = _profile()
    reference = {
        name: dict(zip(drift.bin_labels(f), (c * 1.0 for c in f["counts"]), strict=True))
        for name, f in prof["features"].items()
    }
    for method in drift.METHODS:
        report = drift.drift_report(prof, reference, method, min_samples=1000)
        assert all(s.score == pytest.approx(0.0, abs=1e-3) for s in report.scores), method
