"""`mlops-operator drift-replay`: replay a data set through the drift detector to see its error rates.

The reference profile is built from the data as the worker builds it; live windows are bootstrap
samples of the same rows (so any alarm is a false one), binned as the model server bins them, and
scored as the operator scores them. Then one numeric feature at a time is shifted by a number of its
standard deviations, and we count how often drift is confirmed within `consecutive` windows.
Use it to pick `threshold`, `minSamples` and `consecutiveWindows` for your own data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import drift, profile


@dataclass
class ReplayResult:
    """False alarms on unshifted windows and detection of a shift in each numeric feature."""

    method: str
    threshold: float
    window_rows: int
    windows: int
    features: int
    false_alarms: int  # feature-windows above the threshold, out of windows * features
    max_null_score: float
    detected: dict[str, float] = field(default_factory=dict)  # feature -> share of trials confirmed in time
    attributed: dict[str, float] = field(default_factory=dict)  # ... and with that feature on top
    median_shift_score: dict[str, float] = field(default_factory=dict)

    @property
    def false_alarm_rate(self) -> float:
        """False alarms per feature-window."""
        return self.false_alarms / max(1, self.windows * self.features)

    def summary(self) -> str:
        """A few lines for people."""
        lines = [
            f"{self.method} threshold {self.threshold:g}, windows of {self.window_rows} rows:",
            f"  false alarms {self.false_alarms}/{self.windows * self.features} feature-windows"
            f" ({100 * self.false_alarm_rate:.2f} %), highest unshifted score {self.max_null_score:.4f}",
        ]
        for name, share in self.detected.items():
            lines.append(
                f"  shift in {name}: confirmed in time in {100 * share:.0f} % of trials"
                f" (top feature {100 * self.attributed[name]:.0f} %), median score {self.median_shift_score[name]:.3f}"
            )
        return "\n".join(lines)


def read_inputs(path: Path, drop: list[str]) -> pd.DataFrame:
    """A CSV of model inputs, without the columns that are not inputs (the target)."""
    return pd.read_csv(path).drop(columns=drop)


def reference_profile(frame: pd.DataFrame) -> profile.Profile:
    """The profile the worker would log for this frame (numeric columns binned, the rest categorical)."""
    columns = {name: (frame[name].tolist(), not pd.api.types.is_numeric_dtype(frame[name])) for name in frame.columns}
    return profile.build_profile(columns, len(frame), "replay")


def live_histograms(prof: profile.Profile, window: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Bin counts of one window by the server's bin labels, nulls in drift.NULL_BIN."""
    live: dict[str, dict[str, float]] = {}
    for name, feature in prof["features"].items():
        labels = drift.bin_labels(feature)
        column = window[name]
        if feature["kind"] == "numeric":
            values = column.to_numpy(dtype=float)
            counts = profile.numeric_counts(feature["edges"], values)
            nulls = int(np.isnan(values).sum())
        else:
            counts = [0] * len(labels)
            nulls = 0
            for value in column.tolist():
                if profile.is_null(value):
                    nulls += 1
                else:
                    counts[profile.categorical_bin(feature["values"], str(value))] += 1
        live[name] = {**dict(zip(labels, map(float, counts), strict=True)), drift.NULL_BIN: float(nulls)}
    return live


def replay(
    frame: pd.DataFrame,
    method: str = "psi",
    threshold: float | None = None,
    window_rows: int = 1000,
    windows: int = 200,
    consecutive: int = 2,
    shift_std: float = 0.5,
    trials: int = 50,
    seed: int = 0,
) -> ReplayResult:
    """Measure false alarms over `windows` unshifted windows, and detection of a shift in each numeric feature."""
    rng = np.random.default_rng(seed)
    limit = threshold if threshold is not None else drift.default_threshold(method)
    prof = reference_profile(frame)
    names = list(prof["features"])

    def scores(window: pd.DataFrame) -> dict[str, float]:
        report = drift.drift_report(prof, live_histograms(prof, window), method, min_samples=1)
        return {s.feature: s.score for s in report.scores}

    def sample() -> pd.DataFrame:
        return frame.iloc[rng.integers(0, len(frame), window_rows)].reset_index(drop=True)

    null_scores = [scores(sample()) for _ in range(windows)]
    flat = [value for window in null_scores for value in window.values()]
    result = ReplayResult(
        method=method,
        threshold=limit,
        window_rows=window_rows,
        windows=windows,
        features=len(names),
        false_alarms=sum(1 for value in flat if value > limit),
        max_null_score=max(flat, default=0.0),
    )
    for name in names:
        if prof["features"][name]["kind"] != "numeric":
            continue
        delta = shift_std * float(frame[name].std())
        confirmed = attributed = 0
        shifted_scores: list[float] = []
        for _ in range(trials):
            runs = []
            for _ in range(consecutive):
                window = sample()
                window[name] = window[name] + delta
                runs.append(scores(window))
            shifted_scores.extend(run[name] for run in runs)
            if all(max(run.values()) > limit for run in runs):
                confirmed += 1
                attributed += all(max(run, key=lambda k: run[k]) == name for run in runs)
        result.detected[name] = confirmed / trials
        result.attributed[name] = attributed / trials
        result.median_shift_score[name] = float(np.median(shifted_scores))
    return result
