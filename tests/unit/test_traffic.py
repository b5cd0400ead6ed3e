"""The traffic generator: its data handling on plain data, and --labels against the real app (in-process pods)."""

from __future__ import annotations

import asyncio
import json
import random
import statistics
from pathlib import Path

import httpx
import numpy as np
import pytest
from mlops_operator import contract
from mlops_operator.server.app import ServerApp
from mlops_operator.traffic import load_labels, load_rows, parse_shifts, request_body, send_traffic, shift_rows

from .test_server_app import call, sample
from .test_server_registry import Registry, iris_app, make_app, registry

__all__ = ["iris_app", "registry"]  # fixtures, imported for pytest


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


def test_labels_are_a_column_read_row_for_row(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("a,label\n1,x\n2,3\n")
    assert load_labels(data, "label") == ["x", 3.0]
    with pytest.raises(ValueError, match="--labels nope: no such column"):
        load_labels(data, "nope")


PAIRS = (("canary", "stable"), ("stable", "canary"))


class Pods(httpx.AsyncBaseTransport):
    """Requests to http://<name>/... go to the in-process app of that name, as if each were a pod."""

    def __init__(self, apps: dict[str, ServerApp]) -> None:
        self.transports = {name: httpx.ASGITransport(app=app) for name, app in apps.items()}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.transports[request.url.host].handle_async_request(request)


def iris_csv(registry: Registry, path: Path) -> Path:
    from sklearn.datasets import load_iris

    frame = registry.iris_x.copy()
    iris = load_iris()
    frame["species"] = np.asarray(iris.target_names)[iris.target]
    frame.to_csv(path, index=False)
    return path


def test_traffic_with_labels_sends_feedback_that_any_pod_counts(registry: Registry, tmp_path: Path) -> None:
    key = "a-feedback-key-of-32-characters!"
    pods = {
        "canary": make_app(registry, feedback_key=key),
        "stable": make_app(registry, feedback_key=key, track="stable"),
    }
    data = iris_csv(registry, tmp_path / "iris.csv")

    async def discover() -> list[str]:
        return ["canary", "stable"]

    try:
        report = asyncio.run(
            send_traffic(
                "ns",
                "iris",
                data,
                rate=100,
                duration=0.8,
                labels="species",
                discover=discover,
                transport=Pods(pods),
                malformed=0.1,
                seed=3,
            )
        )
        ok = report.by_status[200]
        assert ok > 20 and report.sent == sum(report.by_status.values()) and report.by_status[422] > 0
        assert report.labels_sent == ok and report.labels_accepted == ok and not report.labels_rejected
        assert report.feedback_failures == 0 and report.without_ids == 0
        assert f"feedback: {ok} labels sent, {ok} accepted, rejected: none" in report.summary()
        texts = {name: call(app, "GET", "/metrics").text for name, app in pods.items()}
        counted = sum(sample(text, contract.METRIC_FEEDBACK) for text in texts.values())
        assert counted == ok  # each label once, by whichever pod got it
        # A batch holds labels for both pods' predictions (they alternate) and goes to one of them: that pod
        # counted the other's predictions under the other's track, read from the ids.
        crossed = sum(sample(texts[pod], contract.METRIC_FEEDBACK, track=other) for pod, other in PAIRS)
        assert crossed > 0
        assert sum(sample(text, contract.METRIC_FEEDBACK, outcome="correct") for text in texts.values()) > ok / 2
    finally:
        for app in pods.values():
            app.stop()


def test_traffic_with_labels_reports_a_server_without_a_key(
    registry: Registry, iris_app: ServerApp, tmp_path: Path
) -> None:
    data = iris_csv(registry, tmp_path / "iris.csv")

    async def discover() -> list[str]:
        return ["plain"]

    report = asyncio.run(
        send_traffic(
            "ns",
            "iris",
            data,
            rate=50,
            duration=0.3,
            labels="species",
            discover=discover,
            transport=Pods({"plain": iris_app}),
        )
    )
    assert report.by_status[200] > 0 and report.without_ids == report.by_status[200] and report.labels_sent == 0
    assert "came without an id" in report.summary()
