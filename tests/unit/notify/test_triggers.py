"""Which planned Events are notification triggers."""

from __future__ import annotations

import pytest
from mlops_operator.notify.triggers import trigger_of


@pytest.mark.parametrize(
    ("kind", "reason", "status", "expected"),
    [
        ("TrainingRun", "Succeeded", {}, "Trained"),
        ("TrainingRun", "OOMKilled", {}, "TrainingFailed"),
        ("TrainingRun", "JobCreated", {}, None),
        ("ModelVersion", "Approved", {}, "Approved"),
        ("ModelVersion", "Rejected", {}, "Rejected"),
        ("ModelVersion", "Promoted", {}, "Promoted"),
        ("ModelVersion", "RolledBack", {}, None),  # the Deployment's Event carries the analysis
        ("Deployment", "CanaryStarted", {}, "CanaryStep"),
        ("Deployment", "CanaryStep", {}, "CanaryStep"),
        ("Deployment", "CanaryCompleted", {}, "CanaryStep"),
        ("Deployment", "RolledBack", {"rollbacks": [{"reason": "AnalysisFailed"}]}, "RolledBack"),
        ("Deployment", "RolledBack", {"rollbacks": [{"reason": "ShadowDisagreement"}]}, "ShadowFailed"),
        ("Deployment", "RolledBack", {}, "RolledBack"),
        ("Deployment", "AbortedByRequest", {"rollbacks": [{"reason": "AbortedByRequest"}]}, "RolledBack"),
        ("Deployment", "Paused", {}, None),
        ("Deployment", "ShadowPassed", {}, "ShadowPassed"),
        ("Deployment", "DriftDetected", {}, "DriftDetected"),
        ("Deployment", "DriftCleared", {}, None),
        ("Deployment", "PerformanceDegraded", {}, "PerformanceDegraded"),
        ("Deployment", "RetrainingTriggered", {}, "RetrainingStarted"),
        ("Deployment", "RetrainingFailed", {}, "RetrainingFailed"),
        ("Deployment", "RetrainingRejected", {}, "RetrainingFailed"),
        ("Dataset", "NewVersion", {}, None),
    ],
)
def test_trigger_of_event(kind: str, reason: str, status: dict, expected: str | None) -> None:
    assert trigger_of(kind, reason, status) == expected
