"""What a prediction returns, as named output arrays: predict and predict_proba, and the warm-up at load.

Pure functions over a loaded model; app.py calls them for every batch (through batching.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .model import LoadedModel, measure_cost, sample_batch
from .protocol_v2 import DEFAULT_OUTPUT, PROBA_OUTPUT, output_datatype
from .schema import Batch, InputError


def as_outputs(result: Any, name: str) -> list[tuple[str, np.ndarray]]:
    """Normalise what predict returned (ndarray, Series, DataFrame, list, dict) to named arrays."""
    if isinstance(result, np.ndarray):
        return [(name, result)]
    if hasattr(result, "columns") and hasattr(result, "to_numpy"):  # DataFrame: one output per column
        return [(str(c), result[c].to_numpy()) for c in result.columns]
    if hasattr(result, "to_numpy"):
        return [(name, result.to_numpy())]
    if isinstance(result, dict):
        return [(str(k), np.asarray(v)) for k, v in result.items()]
    return [(name, np.asarray(result))]


def compute_outputs(model: LoadedModel, batch: Batch, requested: list[str] | None) -> list[tuple[str, np.ndarray]]:
    """Run predict (and predict_proba when asked) on a batch."""
    outputs: list[tuple[str, np.ndarray]] = []
    for name in requested or [DEFAULT_OUTPUT]:
        if name == DEFAULT_OUTPUT:
            outputs.extend(as_outputs(model.predict(batch), DEFAULT_OUTPUT))
        elif name == PROBA_OUTPUT and model.predict_proba is not None:
            outputs.extend(as_outputs(model.predict_proba(batch), PROBA_OUTPUT))
        else:
            known = ", ".join(n for n, _ in model.outputs)
            raise InputError(f"unknown output '{name}'; the model has {known}", status=400, field=name)
    return outputs


def prepare(model: LoadedModel) -> LoadedModel:
    """Warm the model up: measure predict's cost and learn the output datatypes (for metadata)."""
    model.cost = measure_cost(model)
    try:
        sample = sample_batch(model.schema, model.profile, 1)
        model.outputs = [(DEFAULT_OUTPUT, output_datatype(as_outputs(model.predict(sample), DEFAULT_OUTPUT)[0][1]))]
        if model.predict_proba is not None:
            model.outputs.append((PROBA_OUTPUT, "FP64"))
    except Exception:  # metadata then shows no datatype; serving does not depend on it
        model.outputs = [(DEFAULT_OUTPUT, "")]
    return model
