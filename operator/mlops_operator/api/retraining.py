"""Retraining of a Deployment's serving version: its triggers, cooldown and the last decision."""

from __future__ import annotations

from pydantic import Field

from .common import ApiModel, Duration, FreeForm, StatusModel, defaulted


class RetrainingTriggers(ApiModel):
    """Which signals about the serving version start a retraining run (all through one decision)."""

    drift: bool = Field(default=True, description="DriftDetected: the live inputs moved away from the training data.")
    performance_degraded: bool = Field(
        default=True, description="PerformanceDegraded: the live quality from labelled feedback fell past its bound."
    )


class Retraining(ApiModel):
    """Retraining when the serving version drifts or degrades: one run per cooldown, whatever the causes."""

    enabled: bool = False
    cooldown: Duration = Field(
        default="6h", description="At least this long between two decisions, whichever signal asked."
    )
    triggers: RetrainingTriggers = defaulted(RetrainingTriggers)
    training_run_template: FreeForm | None = Field(
        default=None, description="A TrainingRun spec; default: the spec of the run behind the serving version."
    )


class RetrainingStatus(StatusModel):
    """The last retraining run: why it was started (every cause, with its evidence) and how it went."""

    run: str | None = None
    decided_at: str | None = None
    causes: list[str] | None = Field(default=None, description="drift and/or performance, as they coincided.")
    metric: str | None = Field(default=None, description="The degraded performance metric (cause performance).")
    value: float | None = Field(default=None, description="Its live value when the run was decided.")
    labels: int | None = Field(default=None, description="The labels that value rests on.")
    feature: str | None = None
    method: str | None = None
    score: float | None = None
    window: str | None = None
    version: int | None = Field(default=None, description="The serving version whose inputs drifted.")
    phase: str | None = None
    model_version: str | None = None
    model_version_phase: str | None = None
    message: str | None = None
