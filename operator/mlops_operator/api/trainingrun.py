"""The TrainingRun kind: one training Job on a pinned dataset version."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from .common import (
    ApiModel,
    CommonStatus,
    FreeForm,
    LocalObjectReference,
    ResourceRequirements,
    cel,
    defaulted,
)
from .modelversion import Promotion
from .pod import PodOverrides

PrimaryMetric = Literal["accuracy", "f1_macro", "roc_auc", "rmse", "mae", "r2"]

SearchGrid = Annotated[
    dict[str, list[Any]],
    Field(
        json_schema_extra={
            "additionalProperties": {
                "type": "array",
                "minItems": 1,
                "maxItems": 100,
                "items": {"x-kubernetes-preserve-unknown-fields": True},
            }
        }
    ),
]


class Evaluation(ApiModel):
    """How the model is scored on a held-out split."""

    # A CEL rule rather than minimum/maximum: the API server prints fractional bounds as integers.
    test_fraction: float = Field(
        default=0.2,
        ge=0.05,
        le=0.9,
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("self >= 0.05 && self <= 0.9", "testFraction must be between 0.05 and 0.9 (share of rows held out)")
            ]
        },
    )
    seed: int = Field(default=42, ge=0)
    primary_metric: PrimaryMetric | None = Field(
        default=None, description="Metric that picks the best grid point; accuracy or rmse if unset."
    )


class TrainingRunSpec(ApiModel):
    """What to train, on which data, and where to register the result."""

    dataset_ref: LocalObjectReference
    estimator: str = Field(
        pattern=r"^sklearn(\.[A-Za-z_][A-Za-z0-9_]*)+$",
        max_length=256,
        description="Import path of an allow-listed scikit-learn estimator.",
    )
    params: FreeForm | None = None
    search: SearchGrid | None = None
    evaluation: Evaluation = defaulted(Evaluation)
    registered_model: str = Field(min_length=1, max_length=256)
    promotion: Promotion | None = None
    resources: ResourceRequirements | None = None
    backoff_limit: int = Field(default=2, ge=0, le=20)
    active_deadline_seconds: int = Field(default=3600, ge=1, le=7 * 24 * 3600)
    pod: PodOverrides | None = Field(default=None, description="Placement, identity and extras of the training pod.")


TrainingRunPhase = Literal["Pending", "Running", "Succeeded", "Failed", "Refused"]


class TrainingRunStatus(CommonStatus):
    """What the operator observed about a TrainingRun."""

    phase: TrainingRunPhase | None = None
    dataset_version: str | None = None
    job_name: str | None = None
    mlflow_run_id: str | None = None
    metrics: dict[str, float] | None = None
    model_version: str | None = None
    start_time: str | None = None
    completion_time: str | None = None
