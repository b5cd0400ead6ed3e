"""The validation gate as pure functions: a DataFrame and the Dataset spec in, violations out."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypedDict

import numpy as np
import pandas as pd

from ..api.dataset import ColumnSchema, DatasetSpec

TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0"})


class Violation(TypedDict):
    """One failed check, in the shape Dataset status shows."""

    column: str | None
    rule: str
    message: str


def violation(column: str | None, rule: str, message: str) -> Violation:
    """A violation record; `message` already names the column."""
    return {"column": column, "rule": rule, "message": message}


def show(value: Any) -> str:
    """A value as a person would type it: strings quoted, whole floats with one decimal."""
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    return repr(str(value)) if isinstance(value, str) else repr(value)


def bound(value: float) -> str:
    """A schema bound as written in YAML (0, not 0.0)."""
    return f"{value:g}"


def _count(mask: pd.Series, what: str, what_one: str | None = None) -> str:
    n = int(mask.sum())
    return f"1 value {what_one or what}" if n == 1 else f"{n} values {what}"


def _example(series: pd.Series, mask: pd.Series) -> str:
    return show(series[mask].iloc[0])


def numeric(series: pd.Series) -> pd.Series:
    """The column as float64, with anything not a number as NaN."""
    if pd.api.types.is_bool_dtype(series):
        return series.astype("float64")
    return pd.to_numeric(series, errors="coerce").astype("float64")


def _bool_like(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return True
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value) in (0.0, 1.0)
    return str(value).strip().lower() in TRUE_WORDS | FALSE_WORDS


def check_type(series: pd.Series, column: ColumnSchema) -> list[Violation]:
    """Values that cannot be read as the column's declared type (nulls are the nullable rule's concern)."""
    present = series.notna()
    name, kind = column.name, column.type
    if kind in ("float", "int"):
        values = numeric(series)
        bad = present & values.isna()
        if bad.any():
            noun = "number" if kind == "float" else "integer"
            text = _count(bad, f"are not {noun}s", f"is not a{'n' if noun == 'integer' else ''} {noun}")
            return [violation(name, "type", f"column {name!r}: {text} (e.g. {_example(series, bad)})")]
        if kind == "int":
            fractional = present & (values != np.floor(values))
            if fractional.any():
                text = _count(fractional, "are not whole numbers", "is not a whole number")
                return [violation(name, "type", f"column {name!r}: {text} (e.g. {_example(series, fractional)})")]
    elif kind == "bool":
        bad = present & ~series.map(_bool_like, na_action="ignore").fillna(True).astype(bool)
        if bad.any():
            text = _count(
                bad, "are not booleans (true/false, yes/no, 1/0)", "is not a boolean (true/false, yes/no, 1/0)"
            )
            return [violation(name, "type", f"column {name!r}: {text} (e.g. {_example(series, bad)})")]
    elif kind == "datetime":
        parsed = pd.to_datetime(series, errors="coerce", format="mixed", utc=True)
        bad = present & parsed.isna()
        if bad.any():
            text = _count(bad, "are not dates or times", "is not a date or time")
            return [violation(name, "type", f"column {name!r}: {text} (e.g. {_example(series, bad)})")]
    return []


def check_range(series: pd.Series, column: ColumnSchema) -> list[Violation]:
    """Numeric values below `min` or above `max`."""
    if column.type not in ("float", "int") or (column.min is None and column.max is None):
        return []
    values, name, found = numeric(series), column.name, []
    if column.min is not None:
        below = values < column.min
        if below.any():
            text = _count(below, f"below min {bound(column.min)}")
            found.append(violation(name, "min", f"column {name!r}: {text} (e.g. {show(values[below].min())})"))
    if column.max is not None:
        above = values > column.max
        if above.any():
            text = _count(above, f"above max {bound(column.max)}")
            found.append(violation(name, "max", f"column {name!r}: {text} (e.g. {show(values[above].max())})"))
    return found


def check_values(series: pd.Series, column: ColumnSchema) -> list[Violation]:
    """Category or string values outside the allowed `values`."""
    if not column.values:
        return []
    allowed = set(column.values)
    present = series.dropna()
    outside = present[~present.astype(str).isin(allowed)]
    if outside.empty:
        return []
    unknown = sorted({str(v) for v in outside})
    listed = ", ".join(repr(v) for v in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
    allowed_text = ", ".join(repr(v) for v in column.values[:10]) + (", ..." if len(column.values) > 10 else "")
    n = len(outside)
    message = f"column {column.name!r}: {n} value{'s' if n != 1 else ''} not in [{allowed_text}] (found {listed})"
    return [violation(column.name, "values", message)]


def check_nullable(series: pd.Series, column: ColumnSchema) -> list[Violation]:
    """Nulls in a column declared `nullable: false`."""
    nulls = int(series.isna().sum())
    if column.nullable or nulls == 0:
        return []
    text = f"{nulls} null value{'s' if nulls != 1 else ''} but the column is not nullable"
    return [violation(column.name, "nullable", f"column {column.name!r}: {text} (set nullable: true to allow them)")]


ColumnCheck = Callable[[pd.Series, ColumnSchema], list[Violation]]
COLUMN_CHECKS: tuple[ColumnCheck, ...] = (check_type, check_range, check_values, check_nullable)


def check_column(frame: pd.DataFrame, column: ColumnSchema) -> list[Violation]:
    """Every schema rule for one expected column."""
    if column.name not in frame.columns:
        present = ", ".join(repr(str(c)) for c in list(frame.columns)[:20])
        message = f"column {column.name!r}: missing from the data (columns present: {present})"
        return [violation(column.name, "missing", message)]
    series = frame[column.name]
    return [found for check in COLUMN_CHECKS for found in check(series, column)]


def check_null_fraction(frame: pd.DataFrame, max_fraction: float, skip: set[str]) -> list[Violation]:
    """Columns whose share of nulls exceeds `maxNullFraction` (columns in `skip` were already reported)."""
    if frame.empty:
        return []
    found = []
    for name in frame.columns:
        if name in skip:
            continue
        fraction = float(frame[name].isna().mean())
        if fraction > max_fraction:
            message = (
                f"column {str(name)!r}: {fraction:.1%} of values are null, "
                f"above maxNullFraction {max_fraction:g} ({int(frame[name].isna().sum())} of {len(frame)} rows)"
            )
            found.append(violation(str(name), "maxNullFraction", message))
    return found


def check_min_rows(frame: pd.DataFrame, min_rows: int) -> list[Violation]:
    """Too few rows."""
    if len(frame) >= min_rows:
        return []
    return [violation(None, "minRows", f"{len(frame)} rows, fewer than minRows {min_rows}")]


def check_target(frame: pd.DataFrame, target: str | None) -> list[Violation]:
    """The declared target column must exist."""
    if target is None or target in frame.columns:
        return []
    return [violation(target, "target", f"column {target!r}: the target column is missing from the data")]


def validate_frame(frame: pd.DataFrame, spec: DatasetSpec) -> list[Violation]:
    """All violations of a Dataset's rules, table-wide first, then column by column in schema order."""
    found = check_min_rows(frame, spec.validation.min_rows) + check_target(frame, spec.target)
    schema = spec.schema_ or []
    for column in schema:
        found += check_column(frame, column)
    # A non-nullable column with nulls is already reported; the fraction rule would only repeat it.
    reported = {c.name for c in schema if not c.nullable and c.name in frame.columns and frame[c.name].isna().any()}
    return found + check_null_fraction(frame, spec.validation.max_null_fraction, reported)


def fit_tag(violations: list[Violation], max_entries: int, max_chars: int) -> list[Violation]:
    """The longest prefix of at most `max_entries` violations whose JSON stays under `max_chars`."""
    kept: list[Violation] = []
    for item in violations[:max_entries]:
        short = violation(item["column"], item["rule"], item["message"][:500])
        if len(json.dumps([*kept, short])) >= max_chars:
            break
        kept.append(short)
    return kept
