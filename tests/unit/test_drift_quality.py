"""Drift quality on replayed data (not the cluster): false alarms and detection with the default settings.

Reference profiles are built as the worker builds them; windows of 1,000 rows are bootstrap samples of
the same data, binned as the model server bins them and scored as the operator scores them
(mlops_operator.driftreplay). The figures are quoted in the README ("Drift detection").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlops_operator.driftreplay import replay
from mlops_operator.worker.sample_data import write_sample

WINDOWS, ROWS = 200, 1000  # the protocol: 200 windows of 1,000 rows
MAX_FALSE_ALARM_RATE = 0.01


def sample(name: str, tmp_path: Path) -> pd.DataFrame:
    path = tmp_path / f"{name}.csv"
    write_sample(name, path)
    target = {"iris": "species", "diabetes": "progression"}[name]
    return pd.read_csv(path).drop(columns=[target])


def synthetic() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "gaussian": rng.normal(10.0, 2.0, 5000),
            "skewed": rng.exponential(1.0, 5000),
            "colour": rng.choice(["red", "green", "blue"], 5000, p=[0.6, 0.3, 0.1]),
        }
    )


@pytest.mark.parametrize("method", ["psi", "js", "ks"])
@pytest.mark.parametrize("data", ["iris", "diabetes", "synthetic"])
def test_defaults_keep_false_alarms_under_one_percent_and_catch_half_a_sigma_within_two_windows(
    data: str, method: str, tmp_path: Path
) -> None:
    frame = synthetic() if data == "synthetic" else sample(data, tmp_path)
    result = replay(frame, method, window_rows=ROWS, windows=WINDOWS, consecutive=2, shift_std=0.5, trials=40)
    print(result.summary())
    assert result.windows * result.features >= WINDOWS * 3
    assert result.false_alarm_rate <= MAX_FALSE_ALARM_RATE, result.summary()
    assert result.detected and min(result.detected.values()) >= 0.95, result.summary()
    assert min(result.attributed.values()) >= 0.95, result.summary()


def test_without_the_min_samples_guard_small_windows_raise_false_alarms(tmp_path: Path) -> None:
    """Why minSamples defaults to 1,000: 100-row windows of unchanged data cross PSI 0.1 far too often."""
    frame = synthetic()
    small = replay(frame, "psi", window_rows=100, windows=WINDOWS, trials=1)
    guarded = replay(frame, "psi", window_rows=ROWS, windows=WINDOWS, trials=1)
    assert small.false_alarm_rate > 10 * MAX_FALSE_ALARM_RATE, small.summary()
    assert guarded.false_alarm_rate <= MAX_FALSE_ALARM_RATE
