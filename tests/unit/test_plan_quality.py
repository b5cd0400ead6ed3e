"""Live quality and its verdicts (planning/quality.py, planning/qualitytests.py) against sklearn, scipy and by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlops_operator.planning import qualitytests as qt
from mlops_operator.planning.quality import (
    ClassificationCounts,
    RegressionCounts,
    compare_accuracy,
    compare_errors,
    judge_performance,
    measure,
)
from scipy import stats
from scipy.optimize import minimize_scalar
from sklearn import metrics

INF = math.inf
# The server's |error| buckets: 1e-3 .. 1e6, 1 / 2.5 / 5 per decade, then +Inf.
EDGES = [m * 10.0**e for e in range(-3, 6) for m in (1.0, 2.5, 5.0)] + [1e6, INF]
CONFUSION = {("a", "a"): 50, ("a", "b"): 10, ("b", "b"): 30, ("b", "a"): 4, ("c", "b"): 5, ("d", "d"): 0, ("e", "a"): 0}
# "c" is only ever true and never predicted; no class is only predicted here, see the next one.
ONLY_PREDICTED = {("a", "a"): 8, ("a", "z"): 2, ("b", "b"): 5}


def expand(confusion: dict[tuple[str, str], int]) -> tuple[list[str], list[str]]:
    pairs = [pair for pair, count in confusion.items() for _ in range(count)]
    return [t for t, _ in pairs], [p for _, p in pairs]


def regression(errors: np.ndarray) -> RegressionCounts:
    """The window counts the server's histogram and sums would give for these |errors|."""
    buckets = [(le, float((errors <= le).sum())) for le in EDGES]
    return RegressionCounts(float(errors.size), float(errors.sum()), float((errors**2).sum()), buckets)


@pytest.mark.parametrize("confusion", [CONFUSION, ONLY_PREDICTED])
def test_classification_metrics_equal_sklearn_on_the_expanded_labels(confusion: dict[tuple[str, str], int]) -> None:
    y_true, y_pred = expand(confusion)
    counts = ClassificationCounts(confusion)
    assert measure(counts, "accuracy").value == pytest.approx(metrics.accuracy_score(y_true, y_pred))
    assert measure(counts, "f1").value == pytest.approx(metrics.f1_score(y_true, y_pred, average="macro"))
    for label in sorted(set(y_true) | set(y_pred)):
        for name, score in (("precision", metrics.precision_score), ("recall", metrics.recall_score)):
            expected = score(y_true, y_pred, labels=[label], average=None, zero_division=np.nan)[0]
            value = measure(counts, name, positive=label).value
            assert (value is None and math.isnan(expected)) or value == pytest.approx(expected), (name, label)


def test_precision_of_a_class_never_predicted_is_no_value_and_says_why() -> None:
    m = measure(ClassificationCounts(CONFUSION), "precision", positive="c")
    assert (m.value, m.labels, m.reason) == (None, 0.0, "no predictions of class 'c' in the window")
    m = measure(ClassificationCounts(ONLY_PREDICTED), "recall", positive="z")
    assert m.value is None and m.reason == "no labels of class 'z' in the window"
    assert measure(ClassificationCounts(ONLY_PREDICTED), "precision", positive="z").value == 0.0


def test_correct_and_total_give_accuracy_only() -> None:
    counts = ClassificationCounts(correct=90, total=100)
    assert measure(counts, "accuracy").value == 0.9
    assert measure(counts, "f1").reason == "f1 needs the confusion counts, which the window lacks"
    # The two counters are scraped apart: correct may run ahead of total by a label or two.
    assert measure(ClassificationCounts(correct=101, total=100), "accuracy").value == 1.0
    assert measure(ClassificationCounts(correct=0, total=0), "accuracy").reason == "no labels"
    assert measure(counts, "mae").reason == "mae is a regression metric; the feedback is classes"


@pytest.mark.parametrize(
    ("counts", "reason"),
    [
        (ClassificationCounts(correct=-3, total=100), "correct count decreased (-3): a counter reset in the window"),
        (ClassificationCounts(correct=math.nan, total=10), "correct count is NaN (no samples in the window)"),
        (ClassificationCounts(correct=5), "no label count in the window"),
        (ClassificationCounts({("a", "a"): 5, ("a", "b"): -1}), "decreased (-1): a counter reset"),
        (RegressionCounts(count=-1, abs_error_sum=3), "label count decreased (-1): a counter reset in the window"),
        (RegressionCounts(count=10, abs_error_sum=math.nan), "absolute-error sum is NaN"),
    ],
)
def test_nan_and_negative_increases_are_missing_data_never_zero(
    counts: ClassificationCounts | RegressionCounts, reason: str
) -> None:
    metric = "accuracy" if isinstance(counts, ClassificationCounts) else "mae"
    assert reason in (counts.missing or "")
    verdict = judge_performance(counts, metric, minimum=0.5, maximum=1e9, min_labels=1, consecutive=1)
    assert verdict.state == "insufficient" and reason in verdict.message and verdict.labels == 0


def test_regression_mae_rmse_and_histogram() -> None:
    errors = np.array([0.0005, 0.002, 0.3, 0.3, 4.0, 2e6])
    counts = regression(errors)
    assert measure(counts, "mae").value == pytest.approx(errors.mean())
    assert measure(counts, "rmse").value == pytest.approx(math.sqrt((errors**2).mean()))
    histogram = counts.histogram()
    assert not isinstance(histogram, str)
    edges, per_bucket = histogram
    assert edges == EDGES and sum(per_bucket) == 6 and per_bucket[0] == 1 and per_bucket[-1] == 1
    assert measure(RegressionCounts(10, 5.0), "rmse").reason == "no squared-error sum in the window"
    assert measure(RegressionCounts(0, 0.0, 0.0), "mae").reason == "no labels"
    reset = RegressionCounts(3, 1.0, 1.0, [(0.1, 2.0), (1.0, 1.0), (INF, 3.0)])
    assert reset.histogram() == "|error| bucket le=1 below the one before it: a counter reset in the window"
    assert "+Inf" in str(RegressionCounts(3, 1.0, 1.0, [(0.1, 2.0)]).histogram())


def test_judge_performance_counts_windows_in_a_row_and_says_so() -> None:
    def window(correct: int, total: int, run: int) -> tuple[str, int, str]:
        v = judge_performance(
            ClassificationCounts(correct=correct, total=total),
            "accuracy",
            minimum=0.93,
            min_labels=200,
            consecutive=2,
            previous_consecutive=run,
        )
        return v.state, v.consecutive, v.message

    state, run, message = window(1098, 1204, 0)
    assert (state, run, message) == ("ok", 1, "accuracy 0.912 < min 0.93 over 1,204 labels (1 of 2 windows in a row)")
    assert window(100, 112, run) == ("insufficient", 1, "accuracy: 112 of 200 labels needed: no verdict")
    state, run, message = window(1098, 1204, run)  # the window without a verdict neither counted nor broke the run
    assert (state, run, message) == ("degraded", 2, "accuracy 0.912 < min 0.93 over 1,204 labels (2 windows in a row)")
    assert window(1150, 1204, run) == ("ok", 0, "accuracy 0.955 within min 0.93 over 1,204 labels")


def test_judge_performance_max_bounds_errors_and_names_the_class() -> None:
    v = judge_performance(RegressionCounts(400, 480.0, 900.0), "mae", maximum=1.0, min_labels=100, consecutive=1)
    assert (v.state, v.message) == ("degraded", "mae 1.200 > max 1 over 400 labels (1 window in a row)")
    v = judge_performance(
        ClassificationCounts(CONFUSION), "recall", minimum=0.9, min_labels=50, consecutive=1, positive="a"
    )
    assert v.message == "recall of 'a' 0.833 < min 0.9 over 60 labels of class 'a' (1 window in a row)"
    v = judge_performance(
        ClassificationCounts(CONFUSION), "recall", minimum=0.9, min_labels=100, consecutive=1, positive="a"
    )
    assert v.message == "recall of 'a': 60 of 100 labels of class 'a' needed: no verdict"
    with pytest.raises(ValueError, match="minimum or a maximum"):
        judge_performance(ClassificationCounts(CONFUSION), "f1", min_labels=1, consecutive=1)


def test_normal_tail_matches_scipy_far_out() -> None:
    for z in (-3.0, 0.0, 1.645, 5.0, 10.0, 30.0):
        assert qt.normal_sf(z) == pytest.approx(stats.norm.sf(z), rel=1e-12)
    assert qt.normal_isf(0.05) == pytest.approx(stats.norm.isf(0.05))


@pytest.mark.parametrize(
    "case",
    [
        (90, 100, 950, 1000, -0.03),
        (100, 100, 50, 50, -0.05),
        (0, 10, 10, 10, -0.1),
        (47, 50, 455, 500, 0.02),
        (95, 100, 95, 100, 0.0),
        (30, 40, 80, 100, -0.2),
        (570, 600, 5130, 5400, -0.04),
    ],
)
def test_farrington_manning_restricted_estimate_maximises_the_likelihood(
    case: tuple[int, int, int, int, float],
) -> None:
    x1, n1, x2, n2, delta = case

    def negative_log_likelihood(p2: float) -> float:
        p1 = p2 + delta
        return -float(stats.binom.logpmf(x1, n1, p1) + stats.binom.logpmf(x2, n2, p2))

    bounds = (max(0.0, -delta) + 1e-12, min(1.0, 1.0 - delta) - 1e-12)
    best = minimize_scalar(negative_log_likelihood, bounds=bounds, method="bounded", options={"xatol": 1e-12})
    r1, r2 = qt.restricted_proportions(x1, n1, x2, n2, delta)
    assert r2 == pytest.approx(best.x, abs=1e-6) and r1 - r2 == pytest.approx(delta)
    by_hand = (x1 / n1 - x2 / n2 - delta) / math.sqrt(r1 * (1 - r1) / n1 + r2 * (1 - r2) / n2)
    assert qt.difference_score(x1, n1, x2, n2, delta) == pytest.approx(by_hand)


def test_farrington_manning_at_delta_zero_is_the_pooled_two_proportion_z() -> None:
    x1, n1, x2, n2 = 45, 60, 400, 500
    pooled = (x1 + x2) / (n1 + n2)
    z = (x1 / n1 - x2 / n2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    assert qt.difference_score(x1, n1, x2, n2, 0.0) == pytest.approx(z)


@pytest.mark.parametrize("continuity", [True, False])
def test_binned_mann_whitney_equals_scipy_on_the_expanded_samples(continuity: bool) -> None:
    x_counts, y_counts = [3, 0, 7, 12, 5, 1], [9, 4, 6, 5, 0, 0]
    x = np.repeat(np.arange(6), x_counts)
    y = np.repeat(np.arange(6), y_counts)
    rank = qt.mann_whitney_binned(x_counts, y_counts)
    for alternative, greater in (("greater", True), ("less", False)):
        ref = stats.mannwhitneyu(x, y, alternative=alternative, use_continuity=continuity, method="asymptotic")
        assert rank.u == pytest.approx(ref.statistic)
        assert rank.p_value(greater, continuity) == pytest.approx(ref.pvalue, rel=1e-9)


def test_scaling_by_a_decade_moves_every_bucket_three_up_and_keeps_the_mass() -> None:
    counts = [float(i % 4) for i in range(len(EDGES))]
    scaled = qt.scale_histogram(EDGES, counts, 10.0)
    assert scaled[3:-1] == pytest.approx(counts[: len(counts) - 4]) and scaled[:3] == [0.0, 0.0, 0.0]
    assert sum(scaled) == pytest.approx(sum(counts))
    assert qt.scale_histogram(EDGES, counts, 1.0) == pytest.approx(counts)
    with pytest.raises(ValueError):
        qt.scale_histogram(EDGES, counts, 0.5)


def test_error_margin_test_equals_scipy_on_scaled_samples_when_buckets_align() -> None:
    """maxDegradation 9 scales stable's errors by 10, a whole decade: the binned test is then exact."""
    rng = np.random.default_rng(7)
    stable_errors, canary_errors = rng.lognormal(-1, 1, 400), rng.lognormal(1.0, 1, 300)
    verdict = compare_errors(
        regression(canary_errors), regression(stable_errors), max_degradation=9.0, alpha=0.05, min_labels=100
    )
    index = lambda e: np.searchsorted(EDGES, e)  # noqa: E731 - the bucket each error falls in
    ref = stats.mannwhitneyu(index(canary_errors), index(stable_errors) + 3, alternative="less", method="asymptotic")
    assert verdict.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert verdict.canary_value == pytest.approx(canary_errors.mean())


@pytest.mark.parametrize(("scale", "sigma"), [(1.1, 1.0), (1.1, 0.3), (1.1, 2.0)])
def test_errors_at_the_margin_pass_at_most_about_alpha(scale: float, sigma: float) -> None:
    """Candidate errors exactly 10 % larger (the margin): "within the margin" must come out <= alpha (+ noise)."""
    rng = np.random.default_rng(11)
    passes = 0
    for _ in range(300):
        stable, canary = rng.lognormal(0, sigma, 500), scale * rng.lognormal(0, sigma, 500)
        v = compare_errors(regression(canary), regression(stable), max_degradation=0.1, alpha=0.05, min_labels=100)
        passes += v.state == "pass"
    assert passes / 300 <= 0.075


def test_error_comparison_passes_equal_and_fails_much_worse() -> None:
    rng = np.random.default_rng(3)
    stable, equal, worse = (rng.exponential(s, 2000) for s in (1.0, 1.0, 1.5))
    kw = {"max_degradation": 0.1, "alpha": 0.01, "min_labels": 200}
    assert compare_errors(regression(equal), regression(stable), **kw).state == "pass"
    failed = compare_errors(regression(worse), regression(stable), **kw)
    assert failed.state == "fail" and failed.message.startswith("mae canary 1.481 (2,000 labels) vs stable 1.006")
    few = compare_errors(regression(equal[:50]), regression(stable), **kw)
    assert few.state == "inconclusive" and "200 labels on each track needed" in few.message
    other = RegressionCounts(10, 1.0, 1.0, [(1.0, 5.0), (INF, 10.0)])
    assert "buckets differ" in compare_errors(other, regression(stable), **kw).message


def test_accuracy_comparison_verdicts_and_messages() -> None:
    stable = ClassificationCounts(correct=5130, total=5400)
    kw = {"max_degradation": 0.04, "alpha": 0.01, "min_labels": 200}
    equal = compare_accuracy(ClassificationCounts(correct=570, total=600), stable, **kw)
    assert equal.state == "pass"
    assert equal.message == (
        "accuracy canary 0.950 (600 labels) vs stable 0.950 (5,400 labels):"
        f" not worse than stable by 0.04 (z {equal.statistic:.2f}, p {equal.p_value:.2g} < 0.01)"
    )
    worse = compare_accuracy(ClassificationCounts(correct=500, total=600), stable, **kw)
    assert worse.state == "fail" and "worse than stable by more than 0.04" in worse.message
    close = compare_accuracy(ClassificationCounts(correct=95, total=100), stable, **{**kw, "min_labels": 50})
    assert close.state == "inconclusive" and "canary labels needed at this split" in close.message
    few = compare_accuracy(ClassificationCounts(correct=60, total=60), stable, **kw)
    assert few.state == "inconclusive" and few.statistic is None and "200 labels on each track needed" in few.message
    reset = compare_accuracy(ClassificationCounts(correct=-1, total=600), stable, **kw)
    assert reset.state == "inconclusive" and "counter reset" in reset.message
    perfect = ClassificationCounts(correct=300, total=300)
    tie = compare_accuracy(perfect, perfect, max_degradation=0.0, alpha=0.05, min_labels=1)
    assert tie.state == "inconclusive" and tie.statistic == 0.0


def test_fail_alpha_is_separate_from_the_pass_alpha() -> None:
    stable, canary = ClassificationCounts(correct=950, total=1000), ClassificationCounts(correct=170, total=200)
    strict = compare_accuracy(canary, stable, max_degradation=0.04, alpha=0.002, min_labels=100)
    loose = compare_accuracy(canary, stable, max_degradation=0.04, alpha=0.002, min_labels=100, fail_alpha=0.05)
    assert (strict.state, loose.state) == ("inconclusive", "fail")


def test_looks_and_their_alpha() -> None:
    assert qt.max_looks(30, 60, 600) == 23  # 30 s .. 690 s: the look after the deadline is judged before it aborts
    assert qt.per_look_alpha(0.05, 23) == pytest.approx(0.05 / 23)
    assert qt.labels_needed(0.95, 0.04, 0.01, ratio=9.0) == math.ceil(
        (stats.norm.isf(0.01) + stats.norm.isf(0.2)) ** 2 * 0.95 * 0.05 * (1 + 1 / 9) / 0.04**2
    )


counts_pair = st.tuples(st.integers(0, 400), st.integers(1, 400)).map(lambda t: (min(t), max(t)))


@settings(max_examples=200, deadline=None)
@given(
    canary=counts_pair, stable=counts_pair, margin=st.sampled_from([0.0, 0.02, 0.05]), min_labels=st.integers(1, 300)
)
def test_accuracy_verdict_is_monotone_in_the_canary_correct_count(
    canary: tuple[int, int], stable: tuple[int, int], margin: float, min_labels: int
) -> None:
    order = {"fail": 0, "inconclusive": 1, "pass": 2}
    (right, total), (s_right, s_total) = canary, stable
    s = ClassificationCounts(correct=s_right, total=s_total)
    kw = {"max_degradation": margin, "alpha": 0.05, "min_labels": min_labels}
    low = compare_accuracy(ClassificationCounts(correct=right, total=total), s, **kw)
    high = compare_accuracy(ClassificationCounts(correct=min(total, right + 1), total=total), s, **kw)
    assert order[low.state] <= order[high.state]
    if low.statistic is not None and high.statistic is not None:
        assert low.statistic <= high.statistic + 1e-9
    if min(total, s_total) < min_labels:
        assert low.state == high.state == "inconclusive"  # never a verdict, least of all a pass, below minLabels
    if low.p_value is not None:
        assert 0.0 <= low.p_value <= 1.0


@settings(max_examples=200, deadline=None)
@given(a=counts_pair, b=counts_pair)
def test_difference_score_at_zero_margin_is_antisymmetric(a: tuple[int, int], b: tuple[int, int]) -> None:
    forward = qt.difference_score(a[0], a[1], b[0], b[1], 0.0)
    assert forward == pytest.approx(-qt.difference_score(b[0], b[1], a[0], a[1], 0.0), abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(
    x=st.lists(st.integers(0, 30), min_size=3, max_size=8),
    shift=st.integers(0, 3),
)
def test_rank_test_is_symmetric_between_the_tracks(x: list[int], shift: int) -> None:
    y = x[shift:] + x[:shift]
    forward, backward = qt.mann_whitney_binned(x, y), qt.mann_whitney_binned(y, x)
    assert forward.p_value(True) == pytest.approx(backward.p_value(False))
    assert forward.u + backward.u == pytest.approx(forward.n_x * forward.n_y)


@settings(max_examples=100, deadline=None)
@given(correct=st.integers(0, 500), extra=st.integers(0, 500), min_labels=st.integers(1, 1000), run=st.integers(0, 5))
def test_no_performance_verdict_below_min_labels(correct: int, extra: int, min_labels: int, run: int) -> None:
    total = correct + extra
    v = judge_performance(
        ClassificationCounts(correct=correct, total=total),
        "accuracy",
        minimum=0.99,
        min_labels=min_labels,
        consecutive=1,
        previous_consecutive=run,
    )
    if total < min_labels:
        assert v.state == "insufficient" and v.consecutive == run
    else:
        assert v.state != "insufficient"
