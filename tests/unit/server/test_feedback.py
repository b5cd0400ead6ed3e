"""Prediction ids and feedback on the real ASGI app (a real sqlite MLflow model): ids in both protocols, labels
counted by the id's version and track, every refusal with its reason, 4xx never 5xx, and no key: no ids."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlops_operator import contract
from mlops_operator.server.app import ServerApp
from mlops_operator.server.config import ConfigError, ServerConfig, config_from_env
from mlops_operator.server.feedback import (
    DUPLICATE,
    NOT_CONFIGURED,
    REASONS,
    REPLAY_WINDOW,
    Feedback,
    FeedbackSettings,
    ReplayGuard,
    ids_header,
    split_requested,
)
from mlops_operator.server.metrics import FeedbackMetrics
from mlops_operator.server.model import LoadedModel
from mlops_operator.server.predictionids import IdSigner
from mlops_operator.server.schema import Column, InputSchema
from prometheus_client import CollectorRegistry, generate_latest

from ..test_server_app import _send, call, sample
from ..test_server_registry import Registry, iris_app, make_app, registry
from .test_predictionids import KEY as PURE_KEY
from .test_predictionids import NAMES, signed_id

__all__ = ["iris_app", "registry"]  # fixtures, imported for pytest

KEY = "a-feedback-key-of-32-characters!"
OLD_KEY = "the-previous-feedback-key-000000"
INFER = "/v2/models/iris-classifier/infer"
FEEDBACK = "/v2/models/iris-classifier/feedback"
IRIS = {"model": "iris-classifier", "deployment": "iris"}


IRIS_CLASSES = ("setosa", "versicolor", "virginica")


class Standalone:
    """Feedback without a server (no model file, no HTTP): its own signer, metrics, clock and model classes."""

    def __init__(self, classes: tuple[Any, ...] | None = IRIS_CLASSES, clock: Any = time.time, **settings: Any) -> None:
        self.registry = CollectorRegistry()
        self.metrics = FeedbackMetrics(self.registry, {"model": "iris", "track": "stable", "deployment": "iris"})
        limits = {"max_age_s": 3600.0, "max_items": 10_000, "replay_size": 100_000, **settings}
        self.feedback = Feedback(IdSigner(PURE_KEY, **NAMES), FeedbackSettings(**limits), "stable", self.metrics, clock)
        schema = InputSchema((Column("x", "double"),))
        self.model = LoadedModel("iris", "1", "", "sklearn", schema, None, lambda b: None, classes=classes)

    def mint(self, predictions: list[Any], issued: float | None = None, labels: bool = True) -> list[str]:
        values = np.asarray(predictions, dtype=object if labels else None)
        return self.feedback.signer.mint(
            "1", "stable", values, time.time() if issued is None else issued, labels=labels
        )

    def send(self, items: list[Any]) -> dict[str, Any]:
        result: dict[str, Any] = orjson.loads(
            asyncio.run(self.feedback.handle(json.dumps({"feedback": items}).encode(), self.model))
        )
        return result

    def text(self) -> str:
        return generate_latest(self.registry).decode()


def keyed(registry: Registry, uri: str = "models:/iris-classifier/1", **overrides: Any) -> ServerApp:
    """A loaded app that mints ids (make_app: track canary, deployment iris)."""
    return make_app(registry, uri, feedback_key=KEY, **overrides)


@pytest.fixture(scope="module")
def iris_keyed(registry: Registry) -> Iterator[ServerApp]:
    app = keyed(registry)
    yield app
    app.stop()


def predict_ids(app: ServerApp, rows: list[list[float]]) -> tuple[list[Any], list[str]]:
    response = call(app, "POST", "/invocations", json={"instances": rows})
    assert response.status_code == 200, response.text
    body = response.json()
    return body["predictions"], body["prediction_ids"]


def send(app: ServerApp, items: list[dict[str, Any]], path: str = "/feedback") -> dict[str, Any]:
    response = call(app, "POST", path, json={"feedback": items})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_predictions_carry_signed_ids_in_both_protocols(registry: Registry, iris_keyed: ServerApp) -> None:
    frame = registry.iris_x.iloc[::30]
    expected = registry.iris_model.predict(frame).tolist()
    response = call(iris_keyed, "POST", "/invocations", json={"instances": frame.to_numpy().tolist()})
    body = response.json()
    assert body["predictions"] == expected and len(body["prediction_ids"]) == len(frame)
    assert response.headers["x-prediction-ids"] == ",".join(body["prediction_ids"])
    assert iris_keyed.feedback is not None
    for text, label in zip(body["prediction_ids"], expected, strict=True):
        pid = iris_keyed.feedback.signer.verify(text)
        assert (pid.version, pid.track, pid.label) == ("1", "canary", label)
        assert abs(pid.issued - time.time()) < 60

    request = {"id": "req-9", "inputs": [{"name": "input-0", "shape": [len(frame), 4], "datatype": "FP64",
                                          "data": frame.to_numpy().tolist()}]}  # fmt: skip
    outputs = call(iris_keyed, "POST", INFER, json=request).json()
    assert outputs["id"] == "req-9" and [o["name"] for o in outputs["outputs"]] == ["predict", "prediction_id"]
    ids = outputs["outputs"][1]
    assert ids["datatype"] == "BYTES" and ids["shape"] == [len(frame)] and len(set(ids["data"])) == len(frame)
    assert [iris_keyed.feedback.signer.verify(i).label for i in ids["data"]] == expected
    only_proba = call(iris_keyed, "POST", INFER, json={**request, "outputs": [{"name": "predict_proba"}]}).json()
    assert [o["name"] for o in only_proba["outputs"]] == ["predict_proba"]  # outputs named: ids only when named
    named = [{"name": "predict_proba"}, {"name": "prediction_id"}]
    asked = call(iris_keyed, "POST", INFER, json={**request, "outputs": named}).json()
    assert [o["name"] for o in asked["outputs"]] == ["predict", "predict_proba", "prediction_id"]
    meta = call(iris_keyed, "GET", "/v2/models/iris-classifier").json()
    assert meta["outputs"][-1] == {"name": "prediction_id", "datatype": "BYTES", "shape": [-1]}
    many = call(iris_keyed, "POST", "/invocations", json={"instances": registry.iris_x.to_numpy().tolist()})
    assert len(many.json()["prediction_ids"]) == 150 and "x-prediction-ids" not in many.headers  # over 4 KiB


def objects(*values: Any) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = list(values)
    return array


@pytest.mark.parametrize(
    ("issued", "predicted"),
    [
        (2.0**32, objects("setosa", "virginica")),  # issued after 2106: the time does not pack (struct.error)
        (float("inf"), objects("setosa", "virginica")),  # OverflowError
        (None, objects(["setosa"], ["virginica"])),  # predictions that are not hashable: TypeError
        (None, objects("setosa", 10**5000)),  # beyond int's 4300 digits: ValueError
    ],
)
def test_predictions_whose_ids_cannot_be_minted_get_none_and_are_counted(
    issued: float | None, predicted: np.ndarray
) -> None:
    alone = Standalone(clock=time.time if issued is None else lambda: issued)
    assert alone.feedback.ids(alone.model, [("predict", predicted)]) is None
    assert sample(alone.text(), contract.METRIC_PREDICTION_IDS_FAILED, model="iris", track="stable") == 2
    alone.feedback.clock = time.time
    assert len(alone.feedback.ids(alone.model, [("predict", objects("setosa"))]) or []) == 1  # the next one has


def test_a_prediction_never_fails_because_of_its_id(iris_keyed: ServerApp, monkeypatch: pytest.MonkeyPatch) -> None:
    assert iris_keyed.feedback is not None
    monkeypatch.setattr(iris_keyed.feedback, "clock", lambda: 2.0**32)  # ids cannot be minted
    before = sample(call(iris_keyed, "GET", "/metrics").text, contract.METRIC_PREDICTION_IDS_FAILED)
    response = call(iris_keyed, "POST", "/invocations", json={"instances": [[5.1, 3.5, 1.4, 0.2]] * 2})
    assert response.status_code == 200 and response.json() == {"predictions": ["setosa", "setosa"]}
    assert "x-prediction-ids" not in response.headers
    request = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [[5.1, 3.5, 1.4, 0.2]]}]}
    outputs = call(iris_keyed, "POST", INFER, json=request)
    assert outputs.status_code == 200 and [o["name"] for o in outputs.json()["outputs"]] == ["predict"]
    after = sample(call(iris_keyed, "GET", "/metrics").text, contract.METRIC_PREDICTION_IDS_FAILED, **IRIS)
    assert after - before == 3


def test_ids_of_large_answers_are_minted_in_the_prediction_thread(
    iris_keyed: ServerApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    assert iris_keyed.feedback is not None
    minted_in: list[tuple[int, str]] = []
    ids = iris_keyed.feedback.ids

    def recorded(model: Any, outputs: list[tuple[str, np.ndarray]]) -> list[str] | None:
        minted_in.append((len(outputs[0][1]), threading.current_thread().name))
        return ids(model, outputs)

    monkeypatch.setattr(iris_keyed.feedback, "ids", recorded)
    for rows in (1000, 1001):
        _, got = predict_ids(iris_keyed, [[5.1, 3.5, 1.4, 0.2]] * rows)
        assert len(got) == len(set(got)) == rows and iris_keyed.feedback.signer.verify(got[-1]).label == "setosa"
    assert minted_in[0] == (1000, threading.current_thread().name)  # on the event loop, the test's thread here
    assert minted_in[1][0] == 1001 and minted_in[1][1].startswith("predict")


def test_a_request_turns_its_ids_off_by_header_or_parameter(iris_keyed: ServerApp, iris_app: ServerApp) -> None:
    rows = [[5.1, 3.5, 1.4, 0.2]]
    off = {"x-prediction-ids": "None "}
    for body, headers in (({"instances": rows}, off), ({"instances": rows, "params": {"prediction_ids": False}}, {})):
        response = call(iris_keyed, "POST", "/invocations", json=body, headers=headers)
        assert response.status_code == 200 and response.json() == {"predictions": ["setosa"]}, response.text
        assert "x-prediction-ids" not in response.headers
    tensor = {"name": "x", "shape": [1, 4], "datatype": "FP64", "data": rows}
    named = [{"name": "prediction_id"}]
    for body, headers in (
        ({"inputs": [tensor]}, off),
        ({"inputs": [tensor], "parameters": {"prediction_ids": False}}, {}),
        ({"inputs": [tensor], "parameters": {"prediction_ids": False}, "outputs": named}, {}),  # off wins
    ):
        response = call(iris_keyed, "POST", INFER, json=body, headers=headers)
        assert response.status_code == 200 and [o["name"] for o in response.json()["outputs"]] == ["predict"]
    kept = call(iris_keyed, "POST", INFER, json={"inputs": [tensor], "parameters": {"prediction_ids": True}})
    assert [o["name"] for o in kept.json()["outputs"]] == ["predict", "prediction_id"]
    for app in (iris_keyed, iris_app):  # refused alike with or without a key
        bad = call(app, "POST", "/invocations", json={"instances": rows, "params": {"prediction_ids": "no"}})
        assert bad.status_code == 400 and "'params.prediction_ids' must be true or false" in bad.json()["message"]
        bad = call(app, "POST", INFER, json={"inputs": [tensor], "parameters": {"prediction_ids": 0}})
        assert bad.status_code == 400 and "'parameters.prediction_ids'" in bad.json()["error"]
        bad = call(app, "POST", "/invocations", json={"instances": rows}, headers={"x-prediction-ids": "all"})
        assert bad.status_code == 400 and "takes 'none'" in bad.json()["message"]
    assert call(iris_app, "POST", "/invocations", json={"instances": rows}, headers=off).status_code == 200


def test_without_a_key_no_ids_and_feedback_answers_409(iris_app: ServerApp) -> None:
    response = call(iris_app, "POST", "/invocations", json={"instances": [[5.1, 3.5, 1.4, 0.2]]})
    assert response.json() == {"predictions": ["setosa"]} and "x-prediction-ids" not in response.headers
    outputs = call(iris_app, "POST", INFER, json={"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64",
                                                              "data": [[5.1, 3.5, 1.4, 0.2]]}]}).json()  # fmt: skip
    assert [o["name"] for o in outputs["outputs"]] == ["predict"]
    named = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [[5.1, 3.5, 1.4, 0.2]]}],
             "outputs": [{"name": "prediction_id"}]}  # fmt: skip
    assert call(iris_app, "POST", INFER, json=named).status_code == 400  # an unknown output here
    assert "prediction_id" not in json.dumps(call(iris_app, "GET", "/v2/models/iris-classifier").json())
    mlflow = call(iris_app, "POST", "/feedback", json={"feedback": [{"id": "x", "label": "setosa"}]})
    assert mlflow.status_code == 409 and mlflow.json()["message"] == NOT_CONFIGURED
    v2 = call(iris_app, "POST", FEEDBACK, json={"feedback": [{"id": "x", "label": "setosa"}]})
    assert v2.status_code == 409 and v2.json() == {"error": NOT_CONFIGURED}
    assert "feedback" not in call(iris_app, "GET", "/metrics").text  # no empty families either


def test_classification_labels_count_correct_incorrect_and_confusion(registry: Registry) -> None:
    app = keyed(registry)
    try:
        frame = registry.iris_x.iloc[::3]
        predicted, ids = predict_ids(app, frame.to_numpy().tolist())
        classes = list(registry.iris_model.classes_)
        # Every fourth label names the class after the predicted one: those predictions were wrong.
        truth = [classes[(classes.index(p) + (k % 4 == 0)) % 3] for k, p in enumerate(predicted)]
        items = [{"id": i, "label": t} for i, t in zip(ids, truth, strict=True)]
        items[0]["label"] = "unicorn"  # a class the model does not have: refused, not counted as a wrong prediction
        result = send(app, items, FEEDBACK)
        assert result["accepted"] == len(items) - 1 and [r["reason"] for r in result["rejected"]] == ["unknown_class"]
        assert result["rejected"][0]["index"] == 0 and "'unicorn' is not a class" in result["rejected"][0]["message"]
        counted = items[1:]
        text = call(app, "GET", "/metrics").text
        labels = {**IRIS, "version": "1", "track": "canary"}
        right = sum(p == t["label"] for p, t in zip(predicted[1:], counted, strict=True))
        assert sample(text, contract.METRIC_FEEDBACK, **labels, outcome="correct") == right > 0
        assert sample(text, contract.METRIC_FEEDBACK, **labels, outcome="incorrect") == len(counted) - right > 0
        pairs = Counter(zip([t["label"] for t in counted], predicted[1:], strict=True))
        for (true_class, predicted_class), count in pairs.items():
            got = sample(text, contract.METRIC_FEEDBACK_CONFUSION, **labels, true_class=true_class,
                         predicted_class=predicted_class)  # fmt: skip
            assert got == count, (true_class, predicted_class)
        assert sample(text, contract.METRIC_FEEDBACK_CONFUSION, **labels) == len(counted)
        assert sample(text, contract.METRIC_FEEDBACK_REJECTED, **IRIS, reason="unknown_class") == 1
        assert send(app, [{"id": ids[0], "label": predicted[0]}])["accepted"] == 1  # refused, its id not used up
        assert "unicorn" not in text
    finally:
        app.stop()


def test_a_label_naming_no_class_of_the_model_is_refused_unless_the_id_predicted_it() -> None:
    alone = Standalone()
    ids = alone.mint(["setosa", "setosa", "retired", "setosa", "setosa"])  # "retired": another version's class
    answer = alone.send(
        [
            {"id": ids[0], "label": "unicorn"},
            {"id": ids[1], "label": 7},
            {"id": ids[2], "label": "retired"},  # what the id's version predicted: a class it had
            {"id": ids[3], "label": "virginica"},
            {"id": ids[4], "label": "setosa"},
        ]
    )
    assert answer["accepted"] == 3 and [(r["index"], r["reason"]) for r in answer["rejected"]] == [
        (0, "unknown_class"),
        (1, "unknown_class"),
    ]
    text = alone.text()
    assert sample(text, contract.METRIC_FEEDBACK_REJECTED, reason="unknown_class") == 2
    assert sample(text, contract.METRIC_FEEDBACK, outcome="incorrect") == 1  # only virginica for setosa
    assert sample(text, contract.METRIC_FEEDBACK_CONFUSION, true_class="__other__", predicted_class="__other__") == 1
    no_classes = Standalone(classes=None)  # a model without classes_: any label is taken
    assert no_classes.send([{"id": no_classes.mint(["a"])[0], "label": "b"}]) == {"accepted": 1, "rejected": []}


def test_classes_beyond_the_confusion_cap_are_counted_under_other() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    classes = tuple(f"c{k:02}" for k in range(25))
    alone = Standalone(classes=classes)
    predicted = [p for p in classes for _ in classes]
    truth = [t for _ in classes for t in classes]
    answer = alone.send([{"id": i, "label": t} for i, t in zip(alone.mint(predicted), truth, strict=True)])
    assert answer == {"accepted": 625, "rejected": []}  # beyond the cap, labels are counted, not refused
    text = alone.text()
    assert sample(text, contract.METRIC_FEEDBACK, outcome="correct") == 25
    assert sample(text, contract.METRIC_FEEDBACK, outcome="incorrect") == 600
    series = {
        (s.labels["true_class"], s.labels["predicted_class"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == contract.METRIC_FEEDBACK_CONFUSION
    }
    named = {*classes[:20], "__other__"}
    assert len(series) == 21**2 + 1  # 442 series, not 625
    assert {t for t, _ in series} == named and {p for _, p in series} == {*named, "__other_incorrect__"}
    assert series[("c00", "c01")] == 1 and series[("c00", "__other__")] == 5
    assert series[("__other__", "__other__")] == 5  # the diagonal is the correct predictions, beyond the cap too
    assert series[("__other__", "__other_incorrect__")] == 20  # wrong, between two classes beyond the cap
    assert sum(series.values()) == 625 and sum(v for (t, p), v in series.items() if t == p) == 25


def test_a_canary_prediction_labelled_at_a_stable_pod_counts_for_the_canary(registry: Registry) -> None:
    canary, stable = keyed(registry), keyed(registry, track="stable")
    try:
        predicted, ids = predict_ids(canary, [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])
        result = send(stable, [{"id": i, "label": p} for i, p in zip(ids, predicted, strict=True)])
        assert result["accepted"] == 2
        text = call(stable, "GET", "/metrics").text
        assert sample(text, contract.METRIC_FEEDBACK, **IRIS, version="1", track="canary", outcome="correct") == 2
        assert sample(text, contract.METRIC_FEEDBACK, track="stable") == 0
        assert send(canary, [{"id": ids[0], "label": predicted[0]}])["accepted"] == 1  # per worker: the limit
    finally:
        canary.stop()
        stable.stop()


def test_regression_labels_sum_errors_into_counters_and_a_histogram(registry: Registry) -> None:
    app = keyed(registry, "models:/diabetes-regressor/1")
    try:
        frame = registry.diabetes_x.iloc[:40]
        request = {"inputs": [{"name": c, "shape": [40], "datatype": "FP64", "data": frame[c].tolist()}
                              for c in frame.columns]}  # fmt: skip
        outputs = call(app, "POST", "/v2/models/diabetes-regressor/infer", json=request).json()["outputs"]
        predicted, ids = np.asarray(outputs[0]["data"]), outputs[1]["data"]
        truth = predicted + np.linspace(-60, 60, 40)  # errors from 60 down to -60
        result = send(app, [{"id": i, "label": float(t)} for i, t in zip(ids, truth, strict=True)],
                      "/v2/models/diabetes-regressor/feedback")  # fmt: skip
        assert result == {"accepted": 40, "rejected": []}
        errors = predicted - truth
        text = call(app, "GET", "/metrics").text
        labels = {"model": "diabetes-regressor", "deployment": "iris", "version": "1", "track": "canary"}
        histogram = contract.METRIC_FEEDBACK_ABSOLUTE_ERROR
        assert sample(text, f"{histogram}_count", **labels) == 40
        assert sample(text, f"{histogram}_sum", **labels) == pytest.approx(np.abs(errors).sum())
        assert sample(text, f"{histogram}_bucket", **labels, le="50.0") == np.sum(np.abs(errors) <= 50)
        assert sample(text, contract.METRIC_FEEDBACK_SQUARED_ERROR, **labels) == pytest.approx((errors**2).sum())
        over = sample(text, contract.METRIC_FEEDBACK_OVERPREDICTION, **labels)
        under = sample(text, contract.METRIC_FEEDBACK_UNDERPREDICTION, **labels)
        assert over == pytest.approx(errors[errors > 0].sum()) and under == pytest.approx(-errors[errors < 0].sum())
        assert over - under == pytest.approx(errors.sum(), abs=1e-6)
        assert sample(text, contract.METRIC_FEEDBACK) == 0  # no classification counts for a regression
        wrong = send(
            app, [{"id": ids[0], "label": "high"}, {"id": ids[1], "label": True}, {"id": ids[2], "label": 1e300}]
        )
        assert [r["reason"] for r in wrong["rejected"]] == ["label", "label", "label"]  # 1e300: squares overflow
        assert sample(call(app, "GET", "/metrics").text, contract.METRIC_FEEDBACK_REJECTED, reason="label") == 3
    finally:
        app.stop()


def test_every_refused_item_says_why_and_is_counted_by_reason(registry: Registry) -> None:
    app = keyed(registry, feedback_key_previous=OLD_KEY, feedback_max_age_s=3600)
    try:
        _, ids = predict_ids(app, [[5.1, 3.5, 1.4, 0.2]] * 3)
        assert app.feedback is not None
        mint = app.feedback.signer.mint
        setosa = np.asarray(["setosa"], dtype=object)
        now = time.time()
        old = IdSigner(OLD_KEY.encode(), deployment="iris", model="iris-classifier").mint
        forged = IdSigner(b"not-the-key-of-this-deployment!!", deployment="iris", model="iris-classifier").mint
        other = IdSigner(KEY.encode(), deployment="iris-2", model="iris-classifier").mint
        items = [
            {"id": ids[0], "label": "setosa"},  # 0 accepted
            {"id": ids[0], "label": "setosa"},  # 1 the same id again, in the same batch
            {"id": mint("1", "canary", setosa, now - 7200, labels=True)[0], "label": "setosa"},  # 2 expired
            {"id": mint("1", "canary", setosa, now + 3600, labels=True)[0], "label": "setosa"},  # 3 future
            {"id": forged("1", "canary", setosa, now, labels=True)[0], "label": "setosa"},  # 4
            {"id": other("1", "canary", setosa, now, labels=True)[0], "label": "setosa"},  # 5 another Deployment
            {"id": ids[1][:-2] + ("AA" if ids[1][-2:] != "AA" else "BB"), "label": "setosa"},  # 6 altered
            {"id": "not an id", "label": "setosa"},  # 7
            {"id": ids[2], "label": ["setosa"]},  # 8 not a label
            {"id": ids[2]},  # 9 no label
            {"id": ids[2], "label": "setosa", "weight": 2},  # 10 an unknown field
            "setosa",  # 11
            {"id": old("1", "stable", setosa, now, labels=True)[0], "label": "virginica"},  # 12 previous key: accepted
            {"id": ids[2], "label": "setosa"},  # 13 accepted: the refusals above did not use the id up
        ]
        result = send(app, items)
        reasons = {r["index"]: r["reason"] for r in result["rejected"]}
        assert reasons == {
            1: "duplicate", 2: "expired", 3: "future", 4: "signature", 5: "signature", 6: "signature",
            7: "malformed", 8: "label", 9: "malformed", 10: "malformed", 11: "malformed",
        }  # fmt: skip
        assert result["accepted"] == 3 and all(r["message"] for r in result["rejected"])
        assert "labels are taken up to 1 h" in next(r["message"] for r in result["rejected"] if r["index"] == 2)
        assert send(app, [{"id": ids[0], "label": "setosa"}])["rejected"][0]["reason"] == "duplicate"
        text = call(app, "GET", "/metrics").text
        rejected = contract.METRIC_FEEDBACK_REJECTED
        for reason, count in {"duplicate": 2, "signature": 3, "malformed": 4, "label": 1, "expired": 1}.items():
            assert sample(text, rejected, **IRIS, version="1", track="canary", reason=reason) == count, reason
        assert sample(text, contract.METRIC_FEEDBACK, **IRIS, version="1", track="stable", outcome="incorrect") == 1
    finally:
        app.stop()


def test_a_large_feedback_batch_lets_predictions_through_meanwhile(iris_keyed: ServerApp) -> None:
    """10,000 labels are judged 256 at a time: a prediction sent meanwhile is answered before they are."""
    assert iris_keyed.feedback is not None
    labels = np.asarray(["setosa", "virginica"] * 5000, dtype=object)
    ids = iris_keyed.feedback.signer.mint("1", "canary", labels, time.time(), labels=True)
    big = json.dumps({"feedback": [{"id": i, "label": "setosa"} for i in ids]}).encode()
    done: list[str] = []

    async def request(name: str, *args: Any, **kwargs: Any) -> httpx.Response:
        response = await _send(iris_keyed, *args, **kwargs)
        done.append(name)
        return response

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        labelled = asyncio.create_task(request("feedback", "POST", "/feedback", content=big))
        while iris_keyed.body_budget.in_use == 0 and not labelled.done():  # the body is in: judging starts
            await asyncio.sleep(0)
        predicted = await request("predict", "POST", "/invocations", json={"instances": [[5.1, 3.5, 1.4, 0.2]]})
        return await labelled, predicted

    labelled, predicted = asyncio.run(scenario())
    assert labelled.status_code == 200 and labelled.json()["accepted"] == 10_000 and predicted.status_code == 200
    assert done == ["predict", "feedback"]


def test_feedback_past_its_in_flight_limit_is_shed_with_503_and_predictions_are_not(iris_keyed: ServerApp) -> None:
    """Six bodies at once against the default of 4 feedback requests in flight: 2 are shed (503 + Retry-After,
    counted), and a prediction sent meanwhile takes a slot of its own limiter."""
    assert iris_keyed.feedback is not None
    labels = np.asarray(["setosa"] * 3000, dtype=object)
    ids = iris_keyed.feedback.signer.mint("1", "canary", labels, time.time(), labels=True)
    big = json.dumps({"feedback": [{"id": i, "label": "setosa"} for i in ids]}).encode()
    metric = contract.METRIC_FEEDBACK_REJECTED
    shed_before = sample(call(iris_keyed, "GET", "/metrics").text, metric, reason="overloaded")
    headers = {"content-type": "application/json"}

    async def scenario() -> tuple[list[httpx.Response], httpx.Response]:
        paths = ["/feedback", FEEDBACK] * 3
        flood = [asyncio.create_task(_send(iris_keyed, "POST", p, content=big, headers=headers)) for p in paths]
        predicted = await _send(iris_keyed, "POST", "/invocations", json={"instances": [[5.1, 3.5, 1.4, 0.2]]})
        return list(await asyncio.gather(*flood)), predicted

    answers, predicted = asyncio.run(scenario())
    assert sorted(a.status_code for a in answers) == [200] * 4 + [503] * 2
    for shed in (a for a in answers if a.status_code == 503):
        assert shed.headers["retry-after"] == "1" and "feedback requests in flight" in shed.text, shed.text
    assert sum(a.json()["accepted"] for a in answers if a.status_code == 200) == 3000  # then duplicates
    assert predicted.status_code == 200
    assert iris_keyed.feedback_limiter.inflight == 0 and iris_keyed.limiter.inflight == 0  # slots given back
    assert sample(call(iris_keyed, "GET", "/metrics").text, metric, reason="overloaded") - shed_before == 2


@pytest.mark.parametrize(
    ("raw", "status", "needle"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[]", 400, "JSON object"),
        (b'{"feedback": {}}', 400, "'feedback' must be a list"),
        (b'{"feedback": []}', 422, "no items"),
        (b'{"feedback": [], "labels": []}', 400, "unknown field 'labels'"),
        (json.dumps({"feedback": [{"id": "x", "label": 1}] * 6}).encode(), 413, "limit of 5"),
        (json.dumps({"feedback": [{"id": "x" * 100, "label": 1}] * 60}).encode(), 413, "exceeds the limit of 5000"),
    ],
)
def test_a_malformed_body_is_refused_whole_with_a_4xx_naming_the_problem(
    feedback_limits: ServerApp, raw: bytes, status: int, needle: str
) -> None:
    for path, field in (("/feedback", "message"), (FEEDBACK, "error")):
        response = call(feedback_limits, "POST", path, content=raw, headers={"content-type": "application/json"})
        assert response.status_code == status and needle in response.json()[field], (path, response.text)
    if status != 413 or b"x" * 100 not in raw:  # refused by the feedback handler (not by the body limit): counted
        text = call(feedback_limits, "GET", "/metrics").text
        assert sample(text, contract.METRIC_FEEDBACK_REJECTED, reason="body") >= 2


@pytest.fixture(scope="module")
def feedback_limits(registry: Registry) -> Iterator[ServerApp]:
    app = keyed(registry, feedback_max_items=5, max_body_bytes=5000)
    yield app
    app.stop()


def test_methods_paths_and_content_type(feedback_limits: ServerApp) -> None:
    assert call(feedback_limits, "GET", "/feedback").status_code == 405
    assert call(feedback_limits, "GET", FEEDBACK).status_code == 405
    assert call(feedback_limits, "POST", "/v2/models/pets/feedback", json={}).status_code == 404
    assert call(feedback_limits, "POST", "/v2/models/iris-classifier/versions/1/feedback", json={}).status_code == 404
    csv = call(feedback_limits, "POST", "/feedback", content=b"id,label", headers={"content-type": "text/csv"})
    assert csv.status_code == 415 and "application/json" in csv.json()["message"]


def test_replay_guard_counts_once_forgets_by_age_and_refuses_what_it_forgot() -> None:
    guard = ReplayGuard(capacity=3, max_age_s=600)
    now = 10_000.0
    assert guard.admit(b"a" * 12, 9_990, now) is None
    assert guard.admit(b"a" * 12, 9_990, now) == DUPLICATE
    assert guard.admit(b"b" * 12, 9_700, now) is None
    # Ten minutes on, both are older than the max age (refused as expired upstream) and forgotten.
    assert guard.admit(b"c" * 12, 10_650, now + 700) is None and guard.size == 1 and guard.floor == -1
    for tag in (b"d", b"e", b"f"):  # over capacity: the oldest minute goes, and so does every id issued in it
        guard.admit(tag * 12, 10_700 if tag != b"f" else 10_800, now + 800)
    assert guard.size <= 3 and guard.floor >= 10_650
    assert guard.admit(b"c" * 12, 10_650, now + 800) == REPLAY_WINDOW  # forgotten: refused, not counted again


def test_replay_guard_holds_8_bytes_an_id_and_never_more_than_its_capacity() -> None:
    import gc
    import tracemalloc

    count, now = 100_000, 1_800_000_000.0
    tags = np.random.default_rng(7).bytes(8 * count)
    issued = [int(now) - 60 * (k % 100) for k in range(count)]  # 100 minutes of predictions
    gc.collect()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        guard = ReplayGuard(capacity=count, max_age_s=7 * 86400)
        for k in range(count):
            assert guard.admit(tags[8 * k : 8 * k + 8], issued[k], now) is None
        held = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    assert guard.size == count and guard.floor == -1
    assert held < 12 * count, f"{held / count:.1f} bytes an id"  # 8 in arrays, pending sets and buckets aside
    for k in range(0, count, 997):  # every one remembered
        assert guard.admit(tags[8 * k : 8 * k + 8], issued[k], now) == DUPLICATE
    more = np.random.default_rng(8).bytes(8 * 5000)
    for k in range(5000):  # newer ids past the capacity: the oldest buckets go, the size stays bounded
        guard.admit(more[8 * k : 8 * k + 8], int(now) + 1, now + 1)
        assert guard.size <= count
    assert guard.floor >= issued[99] and guard.admit(tags[8 * 99 : 8 * 100], issued[99], now + 1) == REPLAY_WINDOW


def test_outputs_asked_for_and_the_header_bound() -> None:
    assert split_requested(None) == (None, True)
    assert split_requested(["predict_proba"]) == (["predict_proba"], False)
    assert split_requested(["prediction_id"]) == (["predict"], True)
    assert split_requested(["predict_proba", "prediction_id"]) == (["predict", "predict_proba"], True)
    assert split_requested(["predict_proba", "predict", "prediction_id"]) == (["predict_proba", "predict"], True)
    ids = IdSigner(KEY.encode()).mint("1", "stable", np.zeros(100), time.time(), labels=False)
    assert ids_header(ids[:2]) == [(b"x-prediction-ids", ",".join(ids[:2]).encode())]
    assert ids_header(ids) == []  # 100 ids would be 5.7 KB of header


def test_config_keys_are_checked_stripped_and_never_shown() -> None:
    env = {"MLOPS_MODEL_URI": "models:/m/1", "MLOPS_FEEDBACK_KEY": f"  {KEY}\n", "MLOPS_NAMESPACE": "team-a"}
    config = config_from_env(env)
    assert config.feedback_key == KEY and config.namespace == "team-a" and config.feedback_max_age_s == 7 * 86400
    assert KEY not in repr(config) and "feedback_key=" not in repr(config)
    assert config_from_env({**env, "MLOPS_FEEDBACK_MAX_INFLIGHT": "2"}).feedback_max_inflight == 2
    with pytest.raises(ConfigError, match="MLOPS_FEEDBACK_MAX_INFLIGHT=0 must be at least 1"):
        config_from_env({**env, "MLOPS_FEEDBACK_MAX_INFLIGHT": "0"})
    with pytest.raises(ConfigError, match="MLOPS_FEEDBACK_KEY_PREVIOUS has 5 bytes"):
        config_from_env({**env, "MLOPS_FEEDBACK_KEY_PREVIOUS": "short"})
    assert not ServerConfig(model_uri="models:/m/1").feedback_key


# -- property: whatever the feedback body, the answer is never a 5xx -----------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def valid_ids(iris_keyed: ServerApp) -> list[str]:
    return predict_ids(iris_keyed, [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])[1]


ids = st.sampled_from([0, 1]) | st.text(max_size=70) | json_values
items = st.fixed_dictionaries({"id": ids}, optional={"label": json_values, "other": json_values}) | json_values
bodies = st.fixed_dictionaries({"feedback": st.lists(items, max_size=6)}) | json_values


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, path=st.sampled_from(["/feedback", FEEDBACK]))
def test_feedback_bodies_get_2xx_or_4xx_never_5xx(
    iris_keyed: ServerApp, valid_ids: list[str], body: Any, path: str
) -> None:
    if isinstance(body, dict) and isinstance(body.get("feedback"), list):
        for item in body["feedback"]:  # real ids too, so that labels of every kind meet a verified id
            if isinstance(item, dict) and type(item.get("id")) is int and item["id"] in (0, 1):
                item["id"] = valid_ids[item["id"]]
    raw = json.dumps(body, allow_nan=True).encode()
    response = call(iris_keyed, "POST", path, content=raw, headers={"content-type": "application/json"})
    assert response.status_code < 500, (body, response.text)
    answer = response.json()
    assert answer
    if response.status_code == 200:
        assert answer["accepted"] + len(answer["rejected"]) == len(body["feedback"])
        assert all(r["reason"] in REASONS for r in answer["rejected"])


@settings(max_examples=200, deadline=None)
@given(
    flags=st.integers(min_value=0, max_value=255),
    rest=st.binary(min_size=10, max_size=370),
    label=st.sampled_from(["setosa", "", 1, -2.5, True, None, [1]]) | st.text(max_size=8),
)
def test_signed_ids_of_any_body_are_judged_per_item_never_raised(flags: int, rest: bytes, label: Any) -> None:
    """Ids with a valid tag over any body (a leaked key, a bug): each item is accepted or refused with a reason."""
    body = bytes([1, flags]) + rest
    body = body[: len(body) - len(body) % 3]
    answer = Standalone().send([{"id": signed_id(body), "label": label}, {"id": signed_id(body[:-3]), "label": 1}])
    assert answer["accepted"] + len(answer["rejected"]) == 2
    assert all(r["reason"] in REASONS for r in answer["rejected"])
