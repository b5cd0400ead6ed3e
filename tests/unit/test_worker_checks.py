"""The validation gate as pure functions over DataFrames, and column kinds for profiling."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlops_operator.api.dataset import ColumnSchema, DatasetSpec
from mlops_operator.worker import checks
from mlops_operator.worker.profiling import column_kinds, profile_frame


def spec(schema: list[dict[str, Any]] | None = None, **extra: Any) -> DatasetSpec:
    return DatasetSpec.model_validate({"source": {"uri": "file:///d.csv"}, "schema": schema, **extra})


def column(**fields: Any) -> ColumnSchema:
    return ColumnSchema.model_validate(fields)


@pytest.mark.parametrize(
    ("values", "schema", "rule", "fragment"),
    [
        pytest.param([1.0, "abc", 2.0], {"type": "float"}, "type", "1 value is not a number (e.g. 'abc')", id="float"),
        pytest.param(
            [1, 2.5, 3], {"type": "int"}, "type", "1 value is not a whole number (e.g. 2.5)", id="int-fraction"
        ),
        pytest.param(["1", "x"], {"type": "int"}, "type", "1 value is not an integer (e.g. 'x')", id="int-text"),
        pytest.param(["yes", "maybe"], {"type": "bool"}, "type", "1 value is not a boolean", id="bool"),
        pytest.param(["2024-01-01", "soon"], {"type": "datetime"}, "type", "1 value is not a date", id="datetime"),
        pytest.param(
            [-1.0, -2.0, 5.0], {"type": "float", "min": 0}, "min", "2 values below min 0 (e.g. -2.0)", id="min"
        ),
        pytest.param([1, 30, 10], {"type": "int", "max": 20}, "max", "1 value above max 20 (e.g. 30.0)", id="max"),
        pytest.param(["a", "z"], {"type": "category", "values": ["a", "b"]}, "values", "found 'z'", id="values"),
        pytest.param([1.0, None], {"type": "float"}, "nullable", "1 null value but the column", id="nullable"),
    ],
)
def test_each_rule_reports_the_column_and_an_example(
    values: list[Any], schema: dict[str, Any], rule: str, fragment: str
) -> None:
    frame = pd.DataFrame({"c": pd.Series(values, dtype=object)})
    found = checks.check_column(frame, column(name="c", **schema))
    assert [v["rule"] for v in found] == [rule]
    assert found[0]["column"] == "c"
    assert found[0]["message"].startswith("column 'c': ")
    assert fragment in found[0]["message"]


@pytest.mark.parametrize(
    ("values", "schema"),
    [
        pytest.param([1.5, 2, "3.25"], {"type": "float", "min": 0, "max": 10}, id="float"),
        pytest.param([1, 2.0, "3"], {"type": "int"}, id="int"),
        pytest.param([True, "no", 1, "Yes"], {"type": "bool"}, id="bool"),
        pytest.param(["2024-01-01", "2024-02-03T10:00:00"], {"type": "datetime"}, id="datetime"),
        pytest.param(["a", "b", None], {"type": "string", "values": ["a", "b"], "nullable": True}, id="nullable"),
    ],
)
def test_good_columns_pass(values: list[Any], schema: dict[str, Any]) -> None:
    frame = pd.DataFrame({"c": pd.Series(values, dtype=object)})
    assert checks.check_column(frame, column(name="c", **schema)) == []


def test_missing_column_names_the_columns_present() -> None:
    found = checks.check_column(pd.DataFrame({"a": [1]}), column(name="b", type="float"))
    assert found == [checks.violation("b", "missing", "column 'b': missing from the data (columns present: 'a')")]


def test_validate_frame_table_rules_then_columns_in_schema_order() -> None:
    frame = pd.DataFrame({"x": [1.0, -1.0, None], "y": ["a", "b", None]})
    found = checks.validate_frame(
        frame,
        spec(
            [{"name": "x", "type": "float", "min": 0}, {"name": "z", "type": "int"}],
            target="label",
            validation={"minRows": 5, "maxNullFraction": 0.2},
        ),
    )
    assert [(v["column"], v["rule"]) for v in found] == [
        (None, "minRows"),
        ("label", "target"),
        ("x", "min"),
        ("x", "nullable"),
        ("z", "missing"),
        ("y", "maxNullFraction"),  # x's nulls were already reported as not nullable
    ]
    assert "33.3% of values are null, above maxNullFraction 0.2" in found[-1]["message"]


def test_null_fraction_within_limit_passes_for_nullable_columns() -> None:
    frame = pd.DataFrame({"x": [1.0, None, 3.0, 4.0]})
    rules = spec([{"name": "x", "type": "float", "nullable": True}], validation={"maxNullFraction": 0.25})
    assert checks.validate_frame(frame, rules) == []


def test_fit_tag_limits_entries_and_size() -> None:
    many = [checks.violation(f"c{i}", "type", "x" * 1000) for i in range(50)]
    kept = checks.fit_tag(many, max_entries=20, max_chars=5000)
    assert 0 < len(kept) < 20
    assert len(json.dumps(kept)) < 5000
    assert all(len(v["message"]) == 500 for v in kept)
    assert checks.fit_tag(many[:3], max_entries=2, max_chars=100_000) == [
        checks.violation(f"c{i}", "type", "x" * 500) for i in range(2)
    ]


def test_column_kinds_use_schema_first_then_dtype() -> None:
    frame = pd.DataFrame(
        {
            "code": [1, 2],
            "n": [1.5, 2.5],
            "flag": [True, False],
            "word": ["a", "b"],
            "when": pd.to_datetime(["2024-01-01", "2024-01-02"]),
        }
    )
    kinds = column_kinds(frame, spec([{"name": "code", "type": "category"}]))
    assert kinds == {
        "code": "categorical",
        "n": "numeric",
        "flag": "categorical",
        "word": "categorical",
        "when": "datetime",
    }


def test_profile_frame_leaves_out_datetimes_and_reads_schema_types() -> None:
    frame = pd.DataFrame({"n": ["1", "2", "x"], "c": ["a", None, "a"], "when": pd.to_datetime(["2024-01-01"] * 3)})
    built = profile_frame(frame, spec([{"name": "n", "type": "float"}]), "sha256:abc")
    assert set(built["features"]) == {"n", "c"}
    assert built["features"]["n"]["kind"] == "numeric" and built["features"]["n"]["nulls"] == 1
    assert built["features"]["c"] == {"kind": "categorical", "values": ["a"], "counts": [2, 0], "nulls": 1}
    assert built["rows"] == 3 and built["datasetVersion"] == "sha256:abc"


def test_show_formats_values_as_typed() -> None:
    assert [checks.show(v) for v in (np.float64(-1.0), np.int64(3), "x", True)] == ["-1.0", "3", "'x'", "True"]
