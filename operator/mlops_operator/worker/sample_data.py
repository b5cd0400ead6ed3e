"""`mlops-worker sample-data`: scikit-learn's bundled iris and diabetes tables as CSV, optionally shifted."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from .errors import PermanentError

IRIS_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
DIABETES_COLUMNS = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
DATASETS = ("iris", "diabetes")


def iris() -> pd.DataFrame:
    """150 flowers: four measurements in cm and the species name."""
    from sklearn.datasets import load_iris

    bunch = load_iris()
    frame = pd.DataFrame(bunch.data, columns=IRIS_COLUMNS)
    frame["species"] = [str(bunch.target_names[i]) for i in bunch.target]
    return frame


def diabetes() -> pd.DataFrame:
    """442 patients: ten baseline measurements in their original units and disease progression a year later."""
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes(scaled=False)
    frame = pd.DataFrame(bunch.data, columns=DIABETES_COLUMNS)
    frame["progression"] = bunch.target
    return frame


def parse_shift(text: str) -> tuple[str, float]:
    """`FEATURE=DELTA_STD` into its parts."""
    feature, sep, delta = text.partition("=")
    try:
        if not sep or not feature:
            raise ValueError(text)
        return feature, float(delta)
    except ValueError as error:
        raise PermanentError(f"--shift {text!r}: expected FEATURE=DELTA_STD, e.g. petal_length=1.5") from error


def shift(frame: pd.DataFrame, feature: str, delta_std: float) -> pd.DataFrame:
    """A copy with `delta_std` standard deviations added to a numeric column (simulated drift)."""
    if feature not in frame.columns:
        raise PermanentError(f"--shift {feature}: no such column (columns: {', '.join(frame.columns)})")
    if not pd.api.types.is_numeric_dtype(frame[feature]):
        raise PermanentError(f"--shift {feature}: the column is not numeric")
    shifted = frame.copy()
    shifted[feature] = frame[feature] + delta_std * float(frame[feature].std())
    return shifted


def move_boundary(frame: pd.DataFrame, target: str, from_label: str, to_label: str, feature: str) -> pd.DataFrame:
    """A copy where rows of `from_label` with `feature` below that class's median are labelled `to_label`.

    Concept drift for demos and tests: the inputs are unchanged (their PSI stays low), the answer moves."""
    for column in (target, feature):
        if column not in frame.columns:
            raise PermanentError(f"{column}: no such column (columns: {', '.join(frame.columns)})")
    moved = frame.copy()
    of_class = frame[target] == from_label
    if not of_class.any():
        raise PermanentError(f"{target}: no row is labelled {from_label!r}")
    below = of_class & (frame[feature] < frame.loc[of_class, feature].median())
    moved.loc[below, target] = to_label
    return moved


def write_frame(frame: pd.DataFrame, out: Path) -> int:
    """Write a table as CSV to `out` (parent folders created); returns the number of rows."""
    out.parent.mkdir(parents=True, exist_ok=True)
    # Six significant digits keep shifted values readable and the file byte-stable across runs.
    frame.to_csv(out, index=False, float_format="%.6g")
    return len(frame)


def sample_frame(name: str, shifts: Sequence[str] = ()) -> pd.DataFrame:
    """A bundled table with every `FEATURE=DELTA_STD` shift applied in order."""
    if name not in DATASETS:
        raise PermanentError(f"unknown data set {name!r}: choose {' or '.join(DATASETS)}")
    frame = iris() if name == "iris" else diabetes()
    for text in shifts:
        frame = shift(frame, *parse_shift(text))
    return frame


def write_sample(name: str, out: Path, shifts: Sequence[str] = ()) -> int:
    """Write the table as CSV to `out` (parent folders created); returns the number of rows."""
    return write_frame(sample_frame(name, shifts), out)
