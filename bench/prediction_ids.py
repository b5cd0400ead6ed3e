"""Prediction-id microbenchmark (not a test): what ids and labels cost the model server, per row.

Usage: .venv/bin/python bench/prediction_ids.py [--runs 7]

Times, as the median over `--runs` runs (each run the best of a few repeats of a timed loop):
minting ids for 1 and for 1,000 predicted rows (class labels, and regression values), encoding an
/invocations answer with and without them, verifying one id, and judging a feedback body of 1,000
labels (parse, verify, replay guard, Prometheus counters). No key configured, the server mints
nothing: its only cost is one attribute test per request.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import timeit
from collections.abc import Callable

import numpy as np
import orjson
from mlops_operator.server.feedback import Feedback, FeedbackSettings
from mlops_operator.server.invocations import encode_predictions
from mlops_operator.server.metrics import FeedbackMetrics
from mlops_operator.server.model import LoadedModel
from mlops_operator.server.predictionids import IdSigner
from mlops_operator.server.schema import Column, InputSchema
from prometheus_client import CollectorRegistry

CLASSES = ("setosa", "versicolor", "virginica")


def median_seconds(work: Callable[[], object], runs: int, number: int) -> float:
    """Median over runs of the best of 3 repeats of `number` calls, per call."""
    per_run = [min(timeit.repeat(work, number=number, repeat=3)) / number for _ in range(runs)]
    return statistics.median(per_run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    signer = IdSigner(b"k" * 32, namespace="team-a", deployment="iris", model="iris-classifier")
    rng = np.random.default_rng(0)
    labels = {n: np.asarray(CLASSES, dtype=object)[rng.integers(0, 3, n)] for n in (1, 1000)}
    values = {n: rng.normal(150, 50, n) for n in (1, 1000)}
    now = time.time()
    rows: list[tuple[str, float]] = []
    for n in (1, 1000):
        number = 2000 if n == 1 else 10
        label_s = median_seconds(lambda n=n: signer.mint("3", "canary", labels[n], now, labels=True), runs, number)
        value_s = median_seconds(lambda n=n: signer.mint("3", "canary", values[n], now, labels=False), runs, number)
        outputs = [("predict", labels[n])]
        ids = signer.mint("3", "canary", labels[n], now, labels=True)
        plain_s = median_seconds(lambda o=outputs: encode_predictions(o), runs, number)
        with_s = median_seconds(lambda o=outputs, i=ids: encode_predictions(o, i), runs, number)
        rows += [
            (f"mint {n} class-label id(s)", label_s),
            (f"mint {n} regression id(s)", value_s),
            (f"encode /invocations answer, {n} row(s), no ids", plain_s),
            (f"encode /invocations answer, {n} row(s), with ids", with_s),
        ]
        if n == 1000:
            print(f"id length: {len(ids[0])}-{max(len(i) for i in ids)} characters")
    one = signer.mint("3", "canary", labels[1], now, labels=True)[0]
    rows.append(("verify 1 id", median_seconds(lambda: signer.verify(one), runs, 2000)))
    model = LoadedModel("iris", "3", "", "sklearn", InputSchema((Column("x", "double"),)), None, lambda b: None)
    model.classes = CLASSES
    ids = signer.mint("3", "canary", labels[1000], now, labels=True)
    body = orjson.dumps({"feedback": [{"id": i, "label": CLASSES[k % 3]} for k, i in enumerate(ids)]})

    loop = asyncio.new_event_loop()

    def judge() -> None:  # a fresh replay guard each time: every label counts, none is a duplicate
        metrics = FeedbackMetrics(CollectorRegistry(), {"model": "iris", "track": "stable", "deployment": "iris"})
        feedback = Feedback(signer, FeedbackSettings(7 * 86400, 10_000, 500_000), "stable", metrics)
        loop.run_until_complete(feedback.handle(body, model))

    rows.append(("judge a feedback body of 1000 labels", median_seconds(judge, runs, 3)))
    width = max(len(name) for name, _ in rows)
    for name, seconds in rows:
        per_row = f"{seconds / 1000 * 1e6:8.2f} us/row" if "1000" in name else ""
        print(f"{name:<{width}}  {seconds * 1e6:10.1f} us  {per_row}")


if __name__ == "__main__":
    main()
