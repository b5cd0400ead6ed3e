"""MLflow's scoring protocol (`POST /invocations`) as pure functions: the four JSON formats in, predictions out.

Formats, as `mlflow models serve` takes them:
- {"dataframe_split": {"columns": [...], "data": [[...], ...]}}
- {"dataframe_records": [{"col": value, ...}, ...]}
- {"instances": [...]} and {"inputs": ...}: rows as objects or lists, or {"col": [values]} columns.
An optional top-level "params" is accepted and ignored (scikit-learn models take none).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from .schema import Batch, InputError, InputSchema, batch_from_columns, batch_from_rows, check_names

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
IDS_FIELD = "prediction_ids"  # signed prediction ids, one per row, when feedback is configured (feedback.py)


def decode_invocations(payload: Any, schema: InputSchema) -> Batch:
    """A batch from a parsed /invocations body; InputError names the field that is wrong."""
    if not isinstance(payload, dict):
        raise InputError(f"the request body must be a JSON object with one of {', '.join(FORMATS)}", status=400)
    present = [key for key in FORMATS if key in payload]
    unknown = [key for key in payload if key not in FORMATS and key != "params"]
    if unknown:
        raise InputError(
            f"unknown field '{unknown[0]}'; expected one of {', '.join(FORMATS)}", status=400, field=unknown[0]
        )
    if len(present) != 1:
        raise InputError(f"the body needs exactly one of {', '.join(FORMATS)}, got {len(present)}", status=400)
    key = present[0]
    value = payload[key]
    if key == "dataframe_split":
        return decode_split(value, schema)
    if key == "dataframe_records":
        if not isinstance(value, list):
            raise InputError("'dataframe_records' must be a list of objects", status=400, field=key)
        return decode_records(value, schema)
    return decode_instances(value, schema, key)


def decode_split(value: Any, schema: InputSchema) -> Batch:
    """pandas 'split' orientation: column names once, then rows."""
    if not isinstance(value, dict):
        raise InputError(
            "'dataframe_split' must be an object with 'columns' and 'data'", status=400, field="dataframe_split"
        )
    data = value.get("data")
    if not isinstance(data, list):
        raise InputError("'dataframe_split.data' must be a list of rows", status=400, field="dataframe_split.data")
    columns = value.get("columns")
    if columns is None:
        return batch_from_rows(schema, data)
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise InputError(
            "'dataframe_split.columns' must be a list of names", status=400, field="dataframe_split.columns"
        )
    if len(set(columns)) != len(columns):
        raise InputError("'dataframe_split.columns' has duplicate names", field="dataframe_split.columns")
    check_names(schema, columns)
    if len(columns) != len(schema.columns):
        # Optional columns left out: go column-wise so they are filled with nulls.
        rows = _rows_as_columns(data, columns)
        return batch_from_columns(schema, rows)
    return batch_from_rows(schema, data, order=[schema.index[c] for c in columns])


def _rows_as_columns(data: list[Any], columns: list[str]) -> dict[str, Any]:
    if not all(isinstance(row, list) and len(row) == len(columns) for row in data):
        raise InputError(f"every row must have {len(columns)} values", field="dataframe_split.data")
    return {name: [row[j] for row in data] for j, name in enumerate(columns)}


def decode_records(records: list[Any], schema: InputSchema) -> Batch:
    """A list of {column: value} objects."""
    names = schema.names
    rows: list[list[Any]] = []
    width = len(names)
    all_required = all(c.required for c in schema.columns)
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise InputError(f"row {i} must be an object of column values", status=400, field=f"row {i}")
        if len(record) != width or not all_required:
            check_names(schema, list(record))
        try:
            rows.append([record[n] for n in names] if all_required else [record.get(n) for n in names])
        except KeyError as error:  # same width, other names: check_names says which
            check_names(schema, list(record))
            raise InputError(f"row {i}: missing input '{error.args[0]}'", field=str(error.args[0])) from error
    return batch_from_rows(schema, rows)


def decode_instances(value: Any, schema: InputSchema, key: str) -> Batch:
    """TF-serving style 'instances' / 'inputs': rows (objects or lists) or {column: values}."""
    if isinstance(value, dict):
        return batch_from_columns(schema, value)
    if not isinstance(value, list):
        raise InputError(f"'{key}' must be a list of rows or an object of columns", status=400, field=key)
    if value and all(isinstance(row, dict) for row in value):
        return decode_records(value, schema)
    if len(schema.columns) == 1 and value and not isinstance(value[0], list | dict):
        return batch_from_rows(schema, [[v] for v in value])
    return batch_from_rows(schema, value)


def encode_predictions(outputs: list[tuple[str, np.ndarray]], ids: list[str] | None = None) -> bytes:
    """{"predictions": ...} as `mlflow models serve` answers: a list, or records for several outputs.

    With `ids` (feedback.py), "prediction_ids" is a list next to it, one id per row (MLflow's clients read
    "predictions" only)."""
    if len(outputs) == 1:
        array = outputs[0][1]
        body: Any = array if array.dtype.kind in "biuf" else array.tolist()
    else:
        columns = {name: array.tolist() for name, array in outputs}
        rows = len(next(iter(columns.values())))
        body = [{name: values[i] for name, values in columns.items()} for i in range(rows)]
    if ids is None:
        return orjson.dumps({"predictions": body}, option=orjson.OPT_SERIALIZE_NUMPY)
    return orjson.dumps({"predictions": body, IDS_FIELD: ids}, option=orjson.OPT_SERIALIZE_NUMPY)
