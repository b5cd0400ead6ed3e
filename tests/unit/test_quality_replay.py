"""Quality signals on replayed labelled streams (not the cluster): false alarms, detection, canary errors.

Labels arrive as a Poisson process, each correct with the model's accuracy; windows and canary looks are judged
exactly as the operator judges them (mlops_operator.qualityreplay). The figures are quoted in
docs/quality-signals.md; the bounds are the issue's: <= 1 % false PerformanceDegraded windows on an
unchanged stream, <= 5 % promotion of a candidate 5 points worse.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from mlops_operator.qualityreplay import (
    Monitoring,
    Rollout,
    canary_outcomes,
    detection_delays,
    false_alarm_rate,
)

MAX_FALSE_ALARM_RATE = 0.01
MAX_PROMOTION_OF_WORSE = 0.05
TRIALS = 600


@pytest.mark.parametrize("rate", [1.0, 10.0])
def test_defaults_keep_false_degraded_windows_under_one_percent(rate: float) -> None:
    # 8 days of windows of 10 min every minute: 11,000+ windows, a min bound 2 points below the usual accuracy.
    assert false_alarm_rate(rate, Monitoring(), hours=24, streams=8, seed=1) <= MAX_FALSE_ALARM_RATE


def test_without_min_labels_and_consecutive_windows_small_windows_raise_false_alarms() -> None:
    """Why the defaults are what they are: 2-minute windows judged alone at 1 label/s alarm far too often."""
    bare = Monitoring(window=120.0, min_labels=1, consecutive=1)
    assert false_alarm_rate(1.0, bare, hours=24, streams=2, seed=1) > 10 * MAX_FALSE_ALARM_RATE


@pytest.mark.parametrize(
    ("rate", "drop", "median_within", "p90_within"),
    [(1.0, 0.05, 480.0, 660.0), (1.0, 0.10, 330.0, 420.0), (10.0, 0.05, 450.0, 480.0), (10.0, 0.10, 300.0, 330.0)],
)
def test_accuracy_drops_are_detected_within_the_stated_time(
    rate: float, drop: float, median_within: float, p90_within: float
) -> None:
    delays = detection_delays(rate, drop, Monitoring(), trials=150, seed=2)
    assert all(math.isfinite(d) for d in delays), "a drop was never detected"
    assert float(np.median(delays)) <= median_within
    assert float(np.quantile(delays, 0.9)) <= p90_within


@pytest.mark.parametrize("rate", [1.0, 10.0])
@pytest.mark.parametrize("steps", [(10, 50), (10,), (50,)])
def test_a_candidate_five_points_worse_is_rarely_promoted(rate: float, steps: tuple[int, ...]) -> None:
    # Each step on its own must hold the bound: a rollout may have a single analysed step.
    outcomes = canary_outcomes(rate, 0.05, Rollout(steps=steps), trials=TRIALS, seed=3)
    assert outcomes.promoted_rate <= MAX_PROMOTION_OF_WORSE / 2, outcomes


@pytest.mark.parametrize("steps", [(10,), (50,)])
def test_a_candidate_at_the_margin_passes_a_step_at_most_alpha_despite_23_looks(steps: tuple[int, ...]) -> None:
    """alpha is spent over the step's looks; looking 23 times at the full alpha would pass it far more often."""
    spent = canary_outcomes(10.0, 0.04, Rollout(steps=steps), trials=TRIALS, seed=4)
    assert spent.promoted_rate <= Rollout().alpha, spent
    unspent = canary_outcomes(10.0, 0.04, Rollout(steps=steps, spend_alpha=False), trials=TRIALS, seed=4)
    assert unspent.promoted_rate > 2 * Rollout().alpha, unspent


def test_an_equal_candidate_is_promoted_at_10_labels_per_second_within_the_deadlines() -> None:
    outcomes = canary_outcomes(10.0, 0.0, Rollout(), trials=TRIALS, seed=5)
    assert outcomes.failed == 0  # never failed: only the deadline holds an equal candidate back
    assert outcomes.promoted_rate >= 0.8, outcomes
    assert float(np.median(outcomes.promote_seconds)) <= 600.0


def test_at_1_label_per_second_a_10_percent_canary_never_has_enough_labels_and_waits_it_out() -> None:
    """About 69 canary labels in 11 minutes: inconclusive every look, never a pass, never a fail."""
    outcomes = canary_outcomes(1.0, 0.0, Rollout(), trials=100, seed=6)
    assert (outcomes.promoted, outcomes.failed, outcomes.timed_out) == (0, 0, 100)
