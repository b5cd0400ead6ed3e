"""How each column is read (numeric, categorical, or left out) and the reference profile of a table."""

from __future__ import annotations

from typing import Any, Literal

import pandas as pd

from ..api.dataset import DatasetSpec
from ..profile import Profile, build_profile
from .checks import numeric

ColumnKind = Literal["numeric", "categorical", "datetime"]

KIND_OF_TYPE: dict[str, ColumnKind] = {
    "float": "numeric",
    "int": "numeric",
    "category": "categorical",
    "string": "categorical",
    "bool": "categorical",
    "datetime": "datetime",
}


def inferred_kind(series: pd.Series) -> ColumnKind:
    """The kind of a column the schema does not declare, from its dtype."""
    if pd.api.types.is_bool_dtype(series):
        return "categorical"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    return "categorical"


def column_kinds(frame: pd.DataFrame, spec: DatasetSpec) -> dict[str, ColumnKind]:
    """Every column of the table with its kind: the schema's word first, the dtype otherwise."""
    declared = {c.name: KIND_OF_TYPE[c.type] for c in spec.schema_ or []}
    return {str(name): declared.get(str(name)) or inferred_kind(frame[name]) for name in frame.columns}


def profile_columns(frame: pd.DataFrame, kinds: dict[str, ColumnKind]) -> dict[str, tuple[list[Any], bool]]:
    """The input of `build_profile`: values per column and whether they are categorical.

    Datetime columns are left out: timestamps always move forward, so binning them would report
    drift on every window.
    """
    columns: dict[str, tuple[list[Any], bool]] = {}
    for name, kind in kinds.items():
        if kind == "numeric":
            columns[name] = (numeric(frame[name]).tolist(), False)
        elif kind == "categorical":
            series = frame[name]
            columns[name] = (series.astype(object).where(series.notna(), None).tolist(), True)
    return columns


def profile_frame(frame: pd.DataFrame, spec: DatasetSpec, version: str) -> Profile:
    """The reference profile of a whole table."""
    return build_profile(profile_columns(frame, column_kinds(frame, spec)), rows=len(frame), dataset_version=version)
