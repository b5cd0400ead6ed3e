"""The model's input schema (from its MLflow signature), input errors, and the decoded batch.

Pure functions: every request format (Open Inference Protocol, MLflow scoring) decodes into a
`Batch` through these helpers, so the type rules live in one place. An all-numeric schema decodes
into one float64 matrix (rows x features, signature order) that goes straight to the estimator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# MLflow DataType names.
FLOAT_TYPES = frozenset({"double", "float"})
INT_TYPES = frozenset({"long", "integer"})
NUMERIC_TYPES = FLOAT_TYPES | INT_TYPES | {"boolean"}
TEXT_TYPES = frozenset({"string", "binary", "datetime"})
NUMPY_DTYPES = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32", "boolean": "bool"}
INT_LIMITS = {"long": (-(2**63), 2**63 - 1), "integer": (-(2**31), 2**31 - 1)}


class InputError(Exception):
    """The request does not fit the model: status 400 (malformed) or 422 (well-formed, wrong for this model)."""

    def __init__(self, message: str, *, status: int = 422, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.field = field


@dataclass(frozen=True)
class Column:
    """One named input column and its MLflow type."""

    name: str
    type: str
    required: bool = True

    @property
    def numeric(self) -> bool:
        """Whether values of this column are numbers (or booleans)."""
        return self.type in NUMERIC_TYPES


@dataclass(frozen=True)
class InputSchema:
    """The model's inputs in signature order."""

    columns: tuple[Column, ...]
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {c.name: i for i, c in enumerate(self.columns)})

    @property
    def names(self) -> list[str]:
        """Column names in signature order."""
        return [c.name for c in self.columns]

    @property
    def numeric(self) -> bool:
        """Whether every column is numeric, so a batch can be one float64 matrix."""
        return all(c.numeric for c in self.columns)


def schema_from_signature(signature: Any) -> InputSchema | None:
    """The column schema of an MLflow signature; None when it has none or it is tensor-based."""
    inputs = getattr(signature, "inputs", None)
    if inputs is None or not getattr(inputs, "has_input_names", lambda: False)():
        return None
    if getattr(inputs, "is_tensor_spec", lambda: False)():
        return None
    columns = []
    for spec in inputs.inputs:
        kind = getattr(spec.type, "name", str(spec.type))
        columns.append(Column(name=str(spec.name), type=str(kind), required=bool(getattr(spec, "required", True))))
    return InputSchema(tuple(columns))


@dataclass
class Batch:
    """Decoded rows: `matrix` (float64, rows x columns) for numeric schemas, else one array per column."""

    rows: int
    matrix: np.ndarray | None = None
    columns: list[np.ndarray] | None = None

    def column(self, j: int) -> np.ndarray:
        """Values of column j (a view for the matrix form)."""
        if self.matrix is not None:
            return self.matrix[:, j]
        assert self.columns is not None
        return self.columns[j]

    def has_nulls(self) -> bool:
        """Whether any value is NaN/inf (numeric) or None (other columns)."""
        if self.matrix is not None:
            return not bool(np.isfinite(self.matrix).all())
        assert self.columns is not None
        for values in self.columns:
            if values.dtype.kind == "f" and not np.isfinite(values).all():
                return True
            if values.dtype.kind == "O" and any(v is None for v in values):
                return True
        return False

    def frame(self, schema: InputSchema) -> Any:
        """A pandas DataFrame with the signature's dtypes, for models that need one."""
        import pandas as pd

        data: dict[str, Any] = {}
        for j, col in enumerate(schema.columns):
            values = self.column(j)
            if col.type in NUMPY_DTYPES and not (col.type in INT_TYPES and values.dtype.kind == "f"):
                values = values.astype(NUMPY_DTYPES[col.type], copy=False)
            elif col.type == "datetime":
                values = pd.to_datetime(values)
            data[col.name] = values
        return pd.DataFrame(data, columns=schema.names)


def _kind_error(name: str, expected: str, values: np.ndarray) -> InputError:
    got = {"U": "strings", "S": "bytes", "b": "booleans", "f": "numbers", "i": "integers", "u": "integers"}
    described = got.get(values.dtype.kind, "mixed or nested values")
    return InputError(f"column '{name}': expected {expected}, got {described}", field=name)


def _object_to_float(name: str, values: np.ndarray) -> np.ndarray:
    """Numbers and nulls (None -> NaN) of an object array; anything else names the column."""
    out = np.empty(values.shape, dtype=np.float64)
    flat_in, flat_out = values.reshape(-1), out.reshape(-1)
    for i, v in enumerate(flat_in):
        if v is None:
            flat_out[i] = np.nan
        elif isinstance(v, int | float) and not isinstance(v, bool):
            try:
                flat_out[i] = float(v)
            except OverflowError as error:
                raise InputError(f"column '{name}': value out of range", field=name) from error
        else:
            raise InputError(f"column '{name}': expected numbers, got {type(v).__name__} {v!r:.40}", field=name)
    return out


def coerce_column(column: Column, raw: Any) -> np.ndarray:
    """One column's values as a 1-D array checked against the column type (float64 for numeric columns)."""
    try:
        values = raw if isinstance(raw, np.ndarray) else np.asarray(raw)
    except (ValueError, TypeError, OverflowError) as error:
        raise InputError(f"column '{column.name}': values are not a flat list", field=column.name) from error
    if values.ndim != 1:
        raise InputError(f"column '{column.name}': expected a flat list of values", field=column.name)
    kind = values.dtype.kind
    if column.numeric:
        if column.type == "boolean":
            if kind != "b":
                raise _kind_error(column.name, "booleans", values)
            return values.astype(np.float64)
        if kind in "iub":
            if kind == "b" and column.type != "boolean":
                raise _kind_error(column.name, column.type, values)
            out = values.astype(np.float64)
        elif kind == "f":
            out = values.astype(np.float64, copy=False)
        elif kind == "O":
            out = _object_to_float(column.name, values)
        else:
            raise _kind_error(column.name, column.type, values)
        if column.type in INT_TYPES:
            check_integral(column, out)
        return out
    if kind == "U":
        return values.astype(object)
    if kind == "O" and all(v is None or isinstance(v, str) for v in values):
        return values
    raise _kind_error(column.name, f"{column.type} values (strings)", values)


def check_integral(column: Column, values: np.ndarray) -> None:
    """Integer columns take whole numbers in range only (no nulls: pandas cannot hold them as int)."""
    if values.size == 0:
        return
    if not np.isfinite(values).all():
        raise InputError(f"column '{column.name}': {column.type} values cannot be null", field=column.name)
    low, high = INT_LIMITS[column.type]
    if not (np.all(values == np.floor(values)) and values.min() >= low and values.max() <= high):
        raise InputError(f"column '{column.name}': expected whole numbers ({column.type})", field=column.name)


def batch_from_columns(schema: InputSchema, columns: dict[str, Any]) -> Batch:
    """A batch from {name: values}; missing or extra names are errors naming the column."""
    check_names(schema, list(columns))
    arrays: list[np.ndarray] = []
    rows = -1
    for col in schema.columns:
        raw = columns.get(col.name)
        if raw is None:
            arrays.append(np.empty(0))  # an optional column left out; filled once the row count is known
            continue
        values = coerce_column(col, raw)
        if rows not in (-1, len(values)):
            raise InputError(f"column '{col.name}' has {len(values)} values, others have {rows}", field=col.name)
        rows = len(values)
        arrays.append(values)
    rows = max(rows, 0)
    for j, col in enumerate(schema.columns):
        if col.name not in columns or columns[col.name] is None:
            arrays[j] = np.full(rows, np.nan) if col.numeric else np.full(rows, None, dtype=object)
    return assemble(schema, arrays, rows)


def assemble(schema: InputSchema, arrays: list[np.ndarray], rows: int) -> Batch:
    """A batch from per-column arrays already coerced, in schema order."""
    if schema.numeric:
        matrix = np.empty((rows, len(arrays)), dtype=np.float64)
        for j, values in enumerate(arrays):
            matrix[:, j] = values
        return Batch(rows=rows, matrix=matrix)
    return Batch(rows=rows, columns=arrays)


def batch_from_rows(schema: InputSchema, rows: Any, order: Sequence[int] | None = None) -> Batch:
    """A batch from a list of rows (lists); `order[i]` is the schema index of the i-th value of a row."""
    if not isinstance(rows, list):
        raise InputError("expected a list of rows", status=400)
    width = len(schema.columns)
    if not rows:
        return assemble(schema, [np.empty(0) for _ in range(width)], 0)
    try:
        array = np.asarray(rows, dtype=None if schema.numeric else object)
    except (ValueError, TypeError, OverflowError) as error:
        raise InputError("rows must be lists of the same length", status=422) from error
    if array.ndim != 2 or array.shape[1] != width:
        shape = list(array.shape)
        raise InputError(f"expected rows of {width} values ({', '.join(schema.names)}), got an array of shape {shape}")
    if order is not None and list(order) != list(range(width)):
        inverse = np.empty(width, dtype=np.intp)
        inverse[np.asarray(order, dtype=np.intp)] = np.arange(width)
        array = array[:, inverse]
    if array.dtype.kind not in "iufbO":  # strings somewhere: decode column by column to name the culprit
        array = np.asarray(rows, dtype=object)
    if schema.numeric and array.dtype.kind in "iuf" and not any(c.type == "boolean" for c in schema.columns):
        matrix = array.astype(np.float64, copy=False)
        for j, col in enumerate(schema.columns):
            if col.type in INT_TYPES:
                check_integral(col, matrix[:, j])
        return Batch(rows=len(matrix), matrix=np.ascontiguousarray(matrix))
    arrays = [coerce_column(col, array[:, j]) for j, col in enumerate(schema.columns)]
    return assemble(schema, arrays, array.shape[0])


def check_names(schema: InputSchema, names: Sequence[str]) -> None:
    """Missing required or unknown column names are a 422 naming them."""
    known = schema.index
    extra = [n for n in names if n not in known]
    if extra:
        raise InputError(f"unknown input {_quoted(extra)}; the model takes {', '.join(schema.names)}", field=extra[0])
    given = set(names)
    missing = [c.name for c in schema.columns if c.required and c.name not in given]
    if missing:
        raise InputError(f"missing input {_quoted(missing)}", field=missing[0])


def _quoted(names: Sequence[str]) -> str:
    return ", ".join(f"'{n}'" for n in names[:10]) + (" ..." if len(names) > 10 else "")
