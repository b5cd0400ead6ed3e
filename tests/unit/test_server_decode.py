"""Decoding and validation as pure functions, and a property: malformed bodies only ever get a 4xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlops_operator.server.app import ServerApp
from mlops_operator.server.config import ConfigError, config_from_env
from mlops_operator.server.invocations import decode_invocations, encode_predictions
from mlops_operator.server.limits import InflightLimiter, json_content_type
from mlops_operator.server.protocol_v2 import decode_infer_request, encode_infer_response, output_datatype
from mlops_operator.server.schema import Column, InputError, InputSchema, batch_from_rows, coerce_column

from .test_server_app import call
from .test_server_registry import Registry, iris_app, make_app, registry

__all__ = ["iris_app", "registry"]

NUMERIC = InputSchema((Column("a", "double"), Column("b", "double"), Column("n", "long")))
MIXED = InputSchema((Column("colour", "string"), Column("w", "double")))


def test_numeric_rows_become_one_float_matrix() -> None:
    batch = batch_from_rows(NUMERIC, [[1, 2.5, 3], [4, 5, 6]])
    assert batch.matrix is not None and batch.matrix.dtype == np.float64 and batch.matrix.shape == (2, 3)
    reordered = batch_from_rows(NUMERIC, [[3, 1, 2.5]], order=[2, 0, 1])
    assert reordered.matrix is not None and reordered.matrix.tolist() == [[1.0, 2.5, 3.0]]


@pytest.mark.parametrize(
    ("rows", "needle"),
    [
        ([[1, 2, 3.5]], "'n'"),  # not a whole number for a long column
        ([[1, "x", 3]], "'b'"),
        ([[1, 2]], "3 values"),
        ([[1, 2, 3], [1, 2]], "same length"),
        ([[1, 2, None]], "'n'"),  # long columns cannot be null
        ([[1, 2, 2**70]], "'n'"),
    ],
)
def test_bad_rows_name_the_column(rows: Any, needle: str) -> None:
    with pytest.raises(InputError) as caught:
        batch_from_rows(NUMERIC, rows)
    assert needle in caught.value.message and 400 <= caught.value.status < 500


def test_nulls_in_float_columns_are_nan() -> None:
    batch = batch_from_rows(NUMERIC, [[None, 1, 2]])
    assert batch.matrix is not None and np.isnan(batch.matrix[0, 0]) and batch.has_nulls()


def test_mixed_schema_keeps_columns() -> None:
    batch = decode_invocations({"dataframe_records": [{"colour": "red", "w": 1}]}, MIXED)
    assert batch.matrix is None and batch.columns is not None
    frame = batch.frame(MIXED)
    assert frame.dtypes["w"] == np.float64 and frame["colour"].tolist() == ["red"]
    with pytest.raises(InputError, match="colour"):
        coerce_column(MIXED.columns[0], [1, 2])


def test_oip_matrix_and_columns() -> None:
    request = decode_infer_request(
        {"inputs": [{"name": "x", "shape": [2, 3], "datatype": "INT64", "data": [[1, 2, 3], [4, 5, 6]]}]}, NUMERIC
    )
    assert request.batch.matrix is not None and request.batch.matrix[1].tolist() == [4.0, 5.0, 6.0]
    per_column = decode_infer_request(
        {
            "id": "7",
            "outputs": [{"name": "predict"}],
            "inputs": [
                {"name": "n", "shape": [1, 1], "datatype": "INT32", "data": [[3]]},
                {"name": "a", "shape": [1], "datatype": "FP32", "data": [1.5]},
                {"name": "b", "shape": [1], "datatype": "FP64", "data": [2]},
            ],
        },
        NUMERIC,
    )
    assert per_column.request_id == "7" and per_column.outputs == ["predict"]
    assert per_column.batch.matrix is not None and per_column.batch.matrix.tolist() == [[1.5, 2.0, 3.0]]


def test_encoding() -> None:
    body = json.loads(encode_infer_response("m", "2", None, [("predict", np.array([1.5, 2.5]))]))
    assert body["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [2], "data": [1.5, 2.5]}]
    assert len(body["id"]) == 32
    assert [output_datatype(np.zeros(1, t)) for t in ("f4", "i4", "i8", "?", "U3")] == [
        "FP32", "INT32", "INT64", "BOOL", "BYTES"
    ]  # fmt: skip
    assert json.loads(encode_predictions([("predict", np.array(["a", "b"], dtype=object))])) == {
        "predictions": ["a", "b"]
    }


def test_limits_and_config() -> None:
    limiter = InflightLimiter(2)
    assert limiter.try_acquire() and limiter.try_acquire() and not limiter.try_acquire()
    limiter.release()
    assert limiter.try_acquire()
    assert json_content_type([]) and json_content_type([(b"content-type", b"application/json; charset=utf-8")])
    assert not json_content_type([(b"content-type", b"text/csv")])
    config = config_from_env({"MLOPS_MODEL_URI": "models:/m@prod", "MLOPS_WORKERS": "3", "MLOPS_DRIFT": "off"})
    assert config.workers == 3 and not config.drift and config.metrics and config.port == 8080
    with pytest.raises(ConfigError, match="MLOPS_MODEL_URI"):
        config_from_env({})
    with pytest.raises(ConfigError, match="MLOPS_MAX_INFLIGHT"):
        config_from_env({"MLOPS_MODEL_URI": "models:/m/1", "MLOPS_MAX_INFLIGHT": "0"})


# -- property: whatever the body, the answer is never a 5xx --------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=25,
)
names = st.sampled_from(["sepal_length", "sepal_width", "petal_length", "petal_width", "x", ""])
datatypes = st.sampled_from(["FP64", "FP32", "INT64", "INT32", "BYTES", "BOOL", "UINT8", "fp64", "X"])
tensors = st.fixed_dictionaries(
    {"name": names, "datatype": datatypes},
    optional={"shape": st.lists(st.integers(-2, 4), max_size=3), "data": json_values, "parameters": json_values},
)
oip_like = st.fixed_dictionaries({"inputs": st.lists(tensors, max_size=5)}, optional={"outputs": json_values})
mlflow_like = st.dictionaries(
    st.sampled_from(["dataframe_split", "dataframe_records", "instances", "inputs", "params", "other"]),
    json_values | st.fixed_dictionaries({"columns": st.lists(names, max_size=5), "data": json_values}),
    max_size=2,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=json_values | oip_like | mlflow_like, path=st.sampled_from(["infer", "invocations"]))
def test_malformed_bodies_get_4xx_only(iris_app: ServerApp, body: Any, path: str) -> None:
    url = "/v2/models/iris-classifier/infer" if path == "infer" else "/invocations"
    raw = json.dumps(body, allow_nan=True).encode()
    response = call(iris_app, "POST", url, content=raw, headers={"content-type": "application/json"})
    assert response.status_code < 500, (body, response.text)
    if response.status_code >= 400:
        assert response.json()  # every refusal says why


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=64))
def test_arbitrary_bytes_get_4xx_only(iris_app: ServerApp, raw: bytes) -> None:
    response = call(iris_app, "POST", "/invocations", content=raw, headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500 or response.status_code == 200


# -- property: mixed schemas (a string and a number column), values at the edges, both protocols ---------
EDGE_FLOATS = [1.7976931348623157e308, -1.7976931348623157e308, 5e-324, -0.0, 1e-320, 2.0**53 + 1]
edge_values = (
    st.none()
    | st.booleans()
    | st.sampled_from(EDGE_FLOATS)
    | st.floats()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.text(max_size=6)
    | st.sampled_from(["blue", "red", "green", "", "NaN", "Infinity", "1e400"])
)
cells = edge_values | st.lists(edge_values, max_size=3)  # ragged rows and nested cells too


def _pets_body(protocol: str, colours: list[Any], weights: list[Any], shape: list[int] | None) -> Any:
    if protocol == "v2":
        inputs = [
            {"name": "colour", "datatype": "BYTES", "shape": shape or [len(colours)], "data": colours},
            {"name": "weight", "datatype": "FP64", "shape": shape or [len(weights)], "data": weights},
        ]
        return {"inputs": inputs}
    return {
        "dataframe_split": {
            "columns": ["colour", "weight"],
            "data": [list(r) for r in zip(colours, weights, strict=False)],
        }
    }


@pytest.fixture(scope="module")
def pets_app(registry: Registry) -> Iterator[ServerApp]:
    app = make_app(registry, uri="models:/pets/1")
    yield app
    app.stop()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    protocol=st.sampled_from(["v2", "mlflow"]),
    colours=st.lists(cells, min_size=0, max_size=4),
    weights=st.lists(cells, min_size=0, max_size=4),
    shape=st.none() | st.lists(st.integers(-1, 5), max_size=3),
)
def test_mixed_schema_values_at_the_edges_get_2xx_or_4xx_never_5xx(
    pets_app: ServerApp, protocol: str, colours: list[Any], weights: list[Any], shape: list[int] | None
) -> None:
    url = "/v2/models/pets/infer" if protocol == "v2" else "/invocations"
    raw = json.dumps(_pets_body(protocol, colours, weights, shape), allow_nan=True).encode()
    response = call(pets_app, "POST", url, content=raw, headers={"content-type": "application/json"})
    assert response.status_code < 500, (raw[:300], response.text)
    if response.status_code >= 400:
        assert response.json()


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 5000 + b"]" * 5000,  # deeper than any JSON parser's nesting limit
        b'{"instances": ' + b"[" * 300 + b"1.0" + b"]" * 300 + b"}",
        '{"instances": [[5.1, 3.5, 1.4, 0.2]]}'.encode("utf-16"),  # a wrong encoding
        b'{"instances": [[NaN, Infinity, -Infinity, 1e999]]}',
        b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}\xff',
        b'{"inputs": [{"name": "sepal_length", "datatype": "FP64", "shape": [4000000000], "data": [1.0]}]}',
    ],
    ids=["deep", "nested-cell", "utf16", "nan-tokens", "trailing-byte", "huge-shape"],
)
def test_hostile_encodings_get_a_4xx_naming_the_problem(iris_app: ServerApp, raw: bytes) -> None:
    for url in ("/invocations", "/v2/models/iris-classifier/infer"):
        response = call(iris_app, "POST", url, content=raw, headers={"content-type": "application/json"})
        assert 400 <= response.status_code < 500, (url, raw[:80], response.text)
        assert response.json()
