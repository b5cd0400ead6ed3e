"""The traffic generator's data handling, on plain data."""

from __future__ import annotations

import json
import random
import statistics
from pathlib import Path

import pytest
from mlops_operator.traffic import load_rows, parse_shifts, request_body, shift_rows


def test_rows_drop_the_target_and_shift_by_standard_deviations(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("a,b,label\n1,10,x\n3,10,y\n5,10,x\n")
    columns, rows = load_rows(data, {"label"})
    assert columns == ["a", "b"] and rows[0] == [1.0, 10.0]
    shifted = shift_rows(columns, rows, {"a": 0.5})
    std = statistics.pstdev([1.0, 3.0, 5.0])
    assert [r[0] for r in shifted] == pytest.approx([1 + 0.5 * std, 3 + 0.5 * std, 5 + 0.5 * std])
    assert [r[1] for r in shifted] == [10.0, 10.0, 10.0] and rows[0][0] == 1.0
    with pytest.raises(ValueError, match="no such column"):
        shift_rows(columns, rows, {"zzz": 1.0})


def test_bodies_are_mlflow_dataframe_split_and_malformed_ones_are_really_malformed() -> None:
    rng = random.Random(1)
    good = json.loads(request_body(["a", "b"], [1.0, 2.0], False, rng))
    assert good == {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0]]}}
    for _ in range(20):
        body = request_body(["a", "b"], [1.0, 2.0], True, rng)
        try:
            parsed = json.loads(body)
        except ValueError:
            continue
        split = parsed["dataframe_split"]
        assert split["columns"] != ["a", "b"] or split["data"] == [["x", "x"]]


def test_shift_options_parse() -> None:
    assert parse_shifts(["petal_length=0.5", "x=-1"]) == {"petal_length": 0.5, "x": -1.0}
    with pytest.raises(ValueError, match="FEATURE=DELTA"):
        parse_shifts(["petal_length"])
