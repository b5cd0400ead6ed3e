"""Monitoring of a Deployment's serving version: drift of its inputs and live quality from labelled feedback."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from .common import ApiModel, Duration, StatusModel, cel

# The score above which a feature drifts, when spec.monitoring.drift.threshold is unset. Chosen with
# bench/drift_quality.py: <= 1 % false alarms per feature-window at 1,000 rows, and a 0.5-sigma
# mean shift caught in every window (README, "Drift detection").
DEFAULT_DRIFT_THRESHOLDS: dict[str, float] = {"psi": 0.1, "js": 0.12, "ks": 0.1}


class Drift(ApiModel):
    """Drift monitoring of live inputs against the model's reference profile."""

    method: Literal["psi", "js", "ks"] = "psi"
    threshold: float | None = Field(
        default=None, gt=0.0, description="Score above which a feature drifts; default psi 0.1, js 0.12, ks 0.1."
    )
    window: Duration = "30m"
    min_samples: int = Field(default=1000, ge=1, description="No verdict on fewer live values in the window.")
    interval: Duration = "1m"
    consecutive_windows: int = Field(default=2, ge=1, le=100)
    query: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description=(
            "PromQL that replaces the builtin score; {{namespace}} {{deployment}} {{track}} {{window}} {{version}}"
            " are filled in, every selector is scoped to this namespace (one naming another is refused); the"
            " highest series counts, its `feature` label names the feature."
        ),
    )

    @property
    def effective_threshold(self) -> float:
        """The threshold in force: the spec's, else the method's default."""
        return self.threshold if self.threshold is not None else DEFAULT_DRIFT_THRESHOLDS[self.method]


PerformanceMetric = Literal["accuracy", "f1", "precision", "recall", "rmse", "mae"]


class Performance(ApiModel):
    """Live model quality from labelled feedback (POST /v2/models/{name}/feedback), judged every interval."""

    metric: PerformanceMetric = "accuracy"
    positive_class: str | None = Field(
        default=None, min_length=1, max_length=256, description="The class that precision or recall is of."
    )
    min: float | None = Field(default=None, description="Degraded below this (accuracy, f1, precision, recall).")
    max: float | None = Field(default=None, description="Degraded above this (rmse, mae).")
    window: Duration = "10m"
    min_labels: int = Field(
        default=200,
        ge=1,
        le=10_000_000,
        description="No verdict on fewer labels in the window (for precision and recall: of the class).",
    )
    interval: Duration = "1m"
    consecutive_windows: int = Field(
        default=3, ge=1, le=100, description="Checks in a row beyond the bound before PerformanceDegraded."
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("has(self.min) || has(self.max)", "spec.monitoring.performance needs 'min' or 'max'"),
                cel(
                    "!(self.metric in ['precision', 'recall']) || has(self.positiveClass)",
                    "precision and recall are of one class: set positiveClass",
                ),
            ]
        }
    )


class Monitoring(ApiModel):
    """Where metrics live, and how drift and live performance are judged."""

    prometheus_url: str | None = Field(default=None, pattern=r"^https?://.+")
    drift: Drift | None = None
    performance: Performance | None = None


class DriftStatus(StatusModel):
    """The latest drift check of the serving version."""

    score: float | None = None
    feature: str | None = None
    scores: dict[str, float] | None = Field(default=None, description="Every judged feature's score.")
    method: str | None = None
    threshold: float | None = None
    window: str | None = None
    samples: int | None = None
    version: int | None = None
    checked_at: str | None = None
    consecutive: int | None = Field(default=None, description="Successive checks above the threshold.")
    message: str | None = None


class TrackQuality(StatusModel):
    """The live quality of one (version, track) over the last performance window."""

    version: int
    track: str
    value: float | None = None
    labels: int = 0


class PerformanceStatus(StatusModel):
    """The latest performance check of the serving version, and every track's live quality."""

    metric: str | None = None
    version: int | None = Field(default=None, description="The serving (stable) version judged.")
    value: float | None = None
    labels: int | None = None
    window: str | None = None
    checked_at: str | None = None
    consecutive: int | None = Field(default=None, description="Successive checks beyond the bound.")
    message: str | None = None
    tracks: list[TrackQuality] | None = Field(default=None, description="Every labelled (version, track).")
