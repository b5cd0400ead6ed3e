"""Objects as the API server returns them, for the notification tests."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def obj(kind: str, name: str, spec: Obj, status: Obj | None = None, namespace: str = "team-a", **meta: Any) -> Obj:
    """One of our objects with identity fields set."""
    return {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": kind,
        "metadata": {
            "namespace": namespace,
            "name": name,
            "uid": f"uid-{name}",
            "generation": 1,
            "resourceVersion": "42",
            **meta,
        },
        "spec": spec,
        "status": status or {},
    }


def policy(name: str = "alerts", namespace: str = "team-a", **spec: Any) -> Obj:
    """A NotificationPolicy as the store keeps it (one webhook destination unless `destinations` is given)."""
    spec.setdefault("destinations", [{"name": "hook", "url": "http://127.0.0.1:9/hook"}])
    return {"metadata": {"namespace": namespace, "name": name, "generation": 1}, "spec": spec}


MODEL_VERSION_REJECTED = obj(
    "ModelVersion",
    "iris-3",
    {"registeredModel": "iris", "version": 3, "promotion": {"alias": "production", "mode": "auto"}},
    {
        "phase": "Rejected",
        "metrics": {"accuracy": 0.81, "f1_macro": 0.8},
        "gateResults": [{"metric": "accuracy", "value": 0.81, "threshold": 0.9, "passed": False}],
        "message": "gate accuracy: 0.810 < min 0.900",
    },
)

DEPLOYMENT_ROLLED_BACK = obj(
    "Deployment",
    "iris",
    {"model": {"registeredModel": "iris", "alias": "production"}},
    {
        "phase": "RolledBack",
        "stableVersion": 1,
        "rolledBackVersion": 2,
        "analysis": [{"name": "error-rate", "value": 0.4, "threshold": 0.05, "passed": False}],
        "rollbacks": [{"version": 2, "reason": "AnalysisFailed", "message": "canary of version 2 rolled back"}],
    },
)
