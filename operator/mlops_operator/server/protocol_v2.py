"""Open Inference Protocol (KServe v2) request decoding and response encoding, as pure functions.

Two request shapes are accepted, as KServe and MLServer clients send them:
- one tensor per column, named after the signature's columns, shape [n] or [n, 1] (the pandas codec);
- for all-numeric signatures, a single 2-D tensor of shape [n, features] in signature order.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from .schema import Batch, InputError, InputSchema, assemble, check_names, coerce_column

# Datatype -> numpy kinds its JSON data may decode to.
DATATYPES: dict[str, str] = {
    "BOOL": "b",
    "UINT8": "iu",
    "UINT16": "iu",
    "UINT32": "iu",
    "UINT64": "iu",
    "INT8": "iu",
    "INT16": "iu",
    "INT32": "iu",
    "INT64": "iu",
    "FP16": "iuf",
    "FP32": "iuf",
    "FP64": "iuf",
    "BYTES": "UO",
}
# MLflow column type -> the datatype we advertise in model metadata.
COLUMN_DATATYPES = {
    "double": "FP64",
    "float": "FP32",
    "long": "INT64",
    "integer": "INT32",
    "boolean": "BOOL",
    "string": "BYTES",
    "binary": "BYTES",
    "datetime": "BYTES",
}
NUMPY_DATATYPES = {"f": {4: "FP32", 2: "FP16"}, "i": {4: "INT32", 2: "INT16", 1: "INT8"}, "u": {}}
DEFAULT_OUTPUT = "predict"
PROBA_OUTPUT = "predict_proba"
ID_OUTPUT = "prediction_id"  # signed prediction ids, one per row, when feedback is configured (feedback.py)


@dataclass
class InferRequest:
    """A decoded inference request: the batch, the outputs asked for (None: the default), and its id."""

    batch: Batch
    outputs: list[str] | None
    request_id: str | None


def _tensor_field(tensor: dict[str, Any], index: int) -> tuple[str, list[int], str, Any]:
    name = tensor.get("name")
    if not isinstance(name, str):
        raise InputError(f"inputs[{index}].name must be a string", status=400, field=f"inputs[{index}].name")
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise InputError(f"input '{name}': shape must be a list of non-negative integers", status=400, field=name)
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str) or datatype.upper() not in DATATYPES:
        known = ", ".join(DATATYPES)
        raise InputError(
            f"input '{name}': datatype must be one of {known}, got {datatype!r:.40}", status=400, field=name
        )
    if "data" not in tensor:
        raise InputError(f"input '{name}': 'data' is missing", status=400, field=name)
    return name, shape, datatype.upper(), tensor["data"]


def tensor_values(name: str, shape: list[int], datatype: str, data: Any) -> np.ndarray:
    """The data of one tensor as a numpy array of `shape`, checked against its datatype."""
    if not isinstance(data, list):
        data = [data]
    try:
        array = np.asarray(data, dtype=object if datatype == "BYTES" else None)
    except (ValueError, TypeError, OverflowError) as error:
        raise InputError(f"input '{name}': data is ragged or not a list of values", field=name) from error
    expected = math.prod(shape)
    if array.size != expected:
        raise InputError(f"input '{name}': shape {shape} needs {expected} values, data has {array.size}", field=name)
    array = array.reshape(shape)
    kinds = DATATYPES[datatype]
    if datatype == "BYTES":
        if not all(isinstance(v, str) for v in array.reshape(-1)):
            raise InputError(f"input '{name}': BYTES data must be strings", field=name)
    elif array.dtype.kind not in kinds:
        raise InputError(f"input '{name}': {datatype} data must be {_describe(kinds)}", field=name)
    return array


def _describe(kinds: str) -> str:
    return "booleans" if kinds == "b" else "integers" if kinds == "iu" else "numbers"


def decode_infer_request(payload: Any, schema: InputSchema) -> InferRequest:
    """An InferRequest from a parsed JSON body; InputError names the field that is wrong."""
    if not isinstance(payload, dict):
        raise InputError("the request body must be a JSON object with 'inputs'", status=400)
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InputError("'inputs' must be a non-empty list of tensors", status=400, field="inputs")
    tensors = []
    for i, tensor in enumerate(inputs):
        if not isinstance(tensor, dict):
            raise InputError(f"inputs[{i}] must be an object", status=400, field=f"inputs[{i}]")
        tensors.append(_tensor_field(tensor, i))
    request_id = payload.get("id")
    outputs = _requested_outputs(payload.get("outputs"))
    names = [t[0] for t in tensors]
    if len(set(names)) != len(names):
        raise InputError("input names must be unique", field="inputs")
    if len(tensors) == 1 and names[0] not in schema.index and schema.numeric:
        batch = _matrix_tensor(schema, *tensors[0])
    else:
        check_names(schema, names)
        batch = _column_tensors(schema, tensors)
    return InferRequest(batch=batch, outputs=outputs, request_id=request_id if isinstance(request_id, str) else None)


def _requested_outputs(outputs: Any) -> list[str] | None:
    if outputs is None:
        return None
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
    ):
        raise InputError("'outputs' must be a list of objects with a 'name'", status=400, field="outputs")
    return [o["name"] for o in outputs]


def _matrix_tensor(schema: InputSchema, name: str, shape: list[int], datatype: str, data: Any) -> Batch:
    width = len(schema.columns)
    if len(shape) != 2 or shape[1] != width:
        raise InputError(
            f"input '{name}': expected one tensor per column ({', '.join(schema.names)}) "
            f"or one tensor of shape [n, {width}], got shape {shape}",
            field=name,
        )
    if datatype in ("BYTES", "BOOL"):
        raise InputError(f"input '{name}': a [n, {width}] tensor must be numeric, got {datatype}", field=name)
    array = tensor_values(name, shape, datatype, data)
    columns = [coerce_column(col, array[:, j]) for j, col in enumerate(schema.columns)]
    return assemble(schema, columns, shape[0])


def _column_tensors(schema: InputSchema, tensors: list[tuple[str, list[int], str, Any]]) -> Batch:
    arrays: list[np.ndarray | None] = [None] * len(schema.columns)
    rows = -1
    for name, shape, datatype, data in tensors:
        column = schema.columns[schema.index[name]]
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise InputError(f"input '{name}': expected shape [n] or [n, 1], got {shape}", field=name)
        if (datatype == "BYTES") == column.numeric:
            expected = COLUMN_DATATYPES.get(column.type, "BYTES")
            raise InputError(
                f"input '{name}': datatype {datatype} does not fit {column.type}; send {expected}", field=name
            )
        values = tensor_values(name, shape, datatype, data).reshape(-1)
        if rows not in (-1, shape[0]):
            raise InputError(f"input '{name}' has {shape[0]} rows, other inputs have {rows}", field=name)
        rows = shape[0]
        arrays[schema.index[name]] = coerce_column(column, values)
    rows = max(rows, 0)
    filled = [
        a if a is not None else (np.full(rows, np.nan) if c.numeric else np.full(rows, None, dtype=object))
        for a, c in zip(arrays, schema.columns, strict=True)
    ]
    return assemble(schema, filled, rows)


def output_datatype(array: np.ndarray) -> str:
    """The OIP datatype of an output array."""
    kind, size = array.dtype.kind, array.dtype.itemsize
    if kind == "b":
        return "BOOL"
    if kind in "fiu":
        default = {"f": "FP64", "i": "INT64", "u": "UINT64"}[kind]
        return NUMPY_DATATYPES[kind].get(size, default)
    return "BYTES"


def encode_tensor(name: str, array: np.ndarray) -> dict[str, Any]:
    """One output tensor; numeric data stays a numpy array for orjson to serialise without a list."""
    flat = np.ascontiguousarray(array).reshape(-1)
    data: Any = flat if flat.dtype.kind in "biuf" else [_text(v) for v in flat.tolist()]
    return {"name": name, "datatype": output_datatype(array), "shape": list(array.shape), "data": data}


def _text(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value if value is None else str(value)


def encode_infer_response(
    model_name: str,
    version: str,
    request_id: str | None,
    outputs: list[tuple[str, np.ndarray]],
    ids: list[str] | None = None,
) -> bytes:
    """The JSON body of an inference response; prediction `ids` (feedback.py) as a last BYTES output."""
    tensors = [encode_tensor(name, array) for name, array in outputs]
    if ids is not None:
        tensors.append({"name": ID_OUTPUT, "datatype": "BYTES", "shape": [len(ids)], "data": ids})
    body = {
        "model_name": model_name,
        "model_version": version,
        "id": request_id or uuid.uuid4().hex,
        "outputs": tensors,
    }
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


def model_metadata(
    model_name: str, version: str, platform: str, schema: InputSchema, outputs: list[tuple[str, str]]
) -> bytes:
    """The model metadata document (GET /v2/models/{name})."""
    body = {
        "name": model_name,
        "versions": [version],
        "platform": platform,
        "inputs": [
            {"name": c.name, "datatype": COLUMN_DATATYPES.get(c.type, "BYTES"), "shape": [-1]} for c in schema.columns
        ],
        "outputs": [{"name": name, "datatype": datatype, "shape": [-1]} for name, datatype in outputs],
    }
    return orjson.dumps(body)
