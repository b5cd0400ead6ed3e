"""A small namespace as the API returns it: one Dataset, three TrainingRuns, their ModelVersions, a Deployment
with a canary, plus objects without parents; the shapes are those the controllers write."""

from __future__ import annotations

import copy
from typing import Any

Obj = dict[str, Any]
NS = "demo"
MODEL = "iris-classifier"


def meta(name: str, created: str, uid: str, labels: dict[str, str] | None = None, **annotations: str) -> Obj:
    return {
        "name": name,
        "namespace": NS,
        "uid": uid,
        "creationTimestamp": created,
        "labels": labels or {},
        "annotations": dict(annotations),
    }


def dataset(name: str = "iris") -> Obj:
    return {
        "kind": "Dataset",
        "metadata": meta(name, "2026-12-04T10:00:00Z", f"uid-ds-{name}"),
        "spec": {"source": {"uri": "file:///data/iris.csv"}},
        "status": {"phase": "Ready", "version": "sha256:" + "ab" * 32, "rows": 150},
    }


def run(
    name: str,
    created: str,
    metrics: dict[str, float] | None,
    mv: str | None,
    dataset_name: str = "iris",
    labels: dict[str, str] | None = None,
    phase: str = "Succeeded",
) -> Obj:
    status: Obj = {"phase": phase, "datasetVersion": "sha256:" + "ab" * 32, "jobName": f"{name}-1234abcd"}
    if metrics is not None:
        status["metrics"] = metrics
    if mv is not None:
        status["modelVersion"] = mv
    return {
        "kind": "TrainingRun",
        "metadata": meta(name, created, f"uid-{name}", labels),
        "spec": {
            "datasetRef": {"name": dataset_name},
            "estimator": "sklearn.ensemble.RandomForestClassifier",
            "registeredModel": MODEL,
        },
        "status": status,
    }


def model_version(
    version: int,
    run_name: str | None,
    phase: str,
    created: str,
    promoted_at: str | None = None,
    gates: list[Obj] | None = None,
) -> Obj:
    name = f"{MODEL}-{version}"
    status: Obj = {
        "phase": phase,
        "gateResults": gates
        if gates is not None
        else [
            {"metric": "accuracy", "value": 0.967, "threshold": 0.9, "passed": True},
        ],
    }
    if promoted_at:
        status["promotedAt"] = promoted_at
    spec: Obj = {
        "registeredModel": MODEL,
        "version": version,
        "promotion": {"alias": "production", "mode": "auto", "gates": []},
    }
    labels = {}
    if run_name:
        spec["source"] = {"trainingRunRef": run_name, "uri": f"models:/{MODEL}/{version}"}
        labels = {"mlops.dev/training-run": run_name, "mlops.dev/dataset": "iris"}
    return {
        "kind": "ModelVersion",
        "metadata": meta(name, created, f"uid-mv-{version}", labels),
        "spec": spec,
        "status": status,
    }


def deployment(status: Obj | None = None, name: str = "iris") -> Obj:
    return {
        "kind": "Deployment",
        "metadata": meta(name, "2026-12-04T10:00:05Z", f"uid-dep-{name}"),
        "spec": {
            "model": {"registeredModel": MODEL, "alias": "production"},
            "replicas": 2,
            "strategy": {
                "canary": {"steps": [{"weight": 10, "pause": "10s"}, {"weight": 50, "pause": "10s"}, {"weight": 100}]}
            },
        },
        "status": status or {},
    }


SERVING_STATUS: Obj = {
    "phase": "Progressing",
    "stableVersion": 9,
    "canaryVersion": 10,
    "canaryWeight": 50,
    "step": 1,
    "analysis": [
        {"name": "error-rate", "value": 0.0, "threshold": 0.05, "passed": True},
        {"name": "latency-p99", "value": None, "threshold": 2.0, "passed": None, "error": "Prometheus unreachable"},
    ],
    "drift": {"method": "psi", "score": 0.007, "threshold": 0.1, "feature": "sepal_length", "samples": 1372},
    "readyReplicas": 2,
    "history": [
        {"version": 8, "from": "2026-12-04T10:01:00Z", "to": "2026-12-04T10:20:00Z"},
        {"version": 9, "from": "2026-12-04T10:20:00Z"},
    ],
    "rollbacks": [
        {
            "version": 11,
            "reason": "AnalysisFailed",
            "message": "error-rate 0.2 > max 0.05",
            "at": "2026-12-04T10:25:00Z",
        }
    ],
}

DRIFT_ANNOTATIONS = {
    "mlops.dev/retraining-causes": "drift",
    "mlops.dev/drift-feature": "petal_length",
    "mlops.dev/drift-method": "psi",
    "mlops.dev/drift-score": "4.897",
    "mlops.dev/drift-version": "8",
}


def namespace_objects() -> dict[str, list[Obj]]:
    """The namespace, by kind, oldest first (as kube.Reader.list_all returns it)."""
    metrics = {"accuracy": 0.967, "f1_macro": 0.96}
    retrain = run(
        "iris-retrain-1",
        "2026-12-04T10:15:00Z",
        metrics,
        f"{MODEL}-9",
        labels={"mlops.dev/triggered-by": "drift", "mlops.dev/deployment": "iris"},
    )
    retrain["metadata"]["annotations"] = dict(DRIFT_ANNOTATIONS)
    return {
        "Dataset": [dataset()],
        "TrainingRun": [
            run("iris-train", "2026-12-04T10:00:01Z", metrics, f"{MODEL}-8"),
            retrain,
            run(
                "iris-retrain-2",
                "2026-12-04T10:22:00Z",
                metrics,
                f"{MODEL}-10",
                labels={"mlops.dev/triggered-by": "schedule"},
            ),
            run("lost-run", "2026-12-04T10:23:00Z", None, None, dataset_name="gone", phase="Pending"),
        ],
        "ModelVersion": [
            model_version(8, "iris-train", "Superseded", "2026-12-04T10:00:30Z", "2026-12-04T10:01:00Z"),
            model_version(9, "iris-retrain-1", "Promoted", "2026-12-04T10:16:00Z", "2026-12-04T10:20:01Z"),
            model_version(10, "iris-retrain-2", "Approved", "2026-12-04T10:23:00Z"),
            model_version(
                3,
                None,
                "Rejected",
                "2026-12-04T09:00:00Z",
                gates=[{"metric": "f1_macro", "value": 0.5, "threshold": 0.96, "passed": False}],
            ),
        ],
        "Deployment": [deployment(copy.deepcopy(SERVING_STATUS)), deployment({}, name="empty")],
    }
