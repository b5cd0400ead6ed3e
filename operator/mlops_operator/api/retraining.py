"""Retraining of a Deployment's serving version: its triggers, cooldown and the last decision."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from .common import ApiModel, Duration, FreeForm, StatusModel, cel, defaulted

# Five space-separated fields (minute hour day-of-month month day-of-week). The CRD checks this shape and
# the lengths; whether the fields mean anything, and whether the zone exists, only the planner can tell
# (planning/triggers.py): a bad one is reported there, in status, never by refusing to parse the object.
CRON_PATTERN = "^ *[^ ]+( +[^ ]+){4} *$"
TIME_ZONE_PATTERN = "^[A-Za-z0-9_+/-]+$"
CRON_MESSAGE = "cron must be 5 fields, minute hour day-of-month month day-of-week, such as '0 3 * * *'"
TIME_ZONE_MESSAGE = "timeZone must be an IANA time zone name such as UTC or Europe/Berlin"


def _matches(pattern: str, message: str) -> AfterValidator:
    def check(text: str) -> str:
        if not re.fullmatch(pattern, text):
            raise ValueError(message)
        return text

    return AfterValidator(check)


Cron = Annotated[
    str,
    _matches(CRON_PATTERN, CRON_MESSAGE),
    Field(
        max_length=100,
        json_schema_extra={"x-kubernetes-validations": [cel(f"self.matches('{CRON_PATTERN}')", CRON_MESSAGE)]},
    ),
]
TimeZone = Annotated[
    str,
    _matches(TIME_ZONE_PATTERN, TIME_ZONE_MESSAGE),
    Field(
        max_length=64,
        json_schema_extra={
            "x-kubernetes-validations": [cel(f"self.matches('{TIME_ZONE_PATTERN}')", TIME_ZONE_MESSAGE)]
        },
    ),
]


class Schedule(ApiModel):
    """Retrain on a clock: each fire time asks for one run, through the same decision as every trigger."""

    cron: Cron = Field(
        description=(
            "minute hour day-of-month month day-of-week, read in timeZone (DST as cron does it: a time the clock "
            "skips fires just after the jump, a repeated time fires once). A fire is due once it lies after both "
            "the last retraining decision and the time the operator first saw this schedule (no backlog for a new "
            "Deployment or a changed schedule); any number of missed fires make one run; a fire inside the "
            "cooldown or while a run is in flight waits for them, it is not dropped."
        )
    )
    time_zone: TimeZone = Field(default="UTC", description="The IANA time zone the cron is read in.")


class RetrainingTriggers(ApiModel):
    """Which signals start a retraining run; all go through one decision, one run per cooldown."""

    drift: bool = Field(default=True, description="DriftDetected: the live inputs moved away from the training data.")
    performance_degraded: bool = Field(
        default=True, description="PerformanceDegraded: the live quality from labelled feedback fell past its bound."
    )
    schedule: Schedule | None = Field(default=None, description="A cron schedule in a time zone (cause schedule).")
    on_new_data: bool = Field(
        default=False,
        description=(
            "A new Dataset version (cause newData): the Dataset the run would train on (the template's datasetRef) "
            "is Ready with a version that neither the serving version nor the last decision was trained on."
        ),
    )


class Retraining(ApiModel):
    """Retraining of the serving version on drift, degradation, a schedule or new data: one run per cooldown."""

    enabled: bool = False
    cooldown: Duration = Field(
        default="6h",
        description=(
            "At least this long between two decisions, whichever signals asked; a run in flight (training, or its "
            "version still on its way through gates and canary) blocks new decisions too."
        ),
    )
    triggers: RetrainingTriggers = defaulted(RetrainingTriggers)
    training_run_template: FreeForm | None = Field(
        default=None, description="A TrainingRun spec; default: the spec of the run behind the serving version."
    )


class RetrainingStatus(StatusModel):
    """The last retraining run: why it was started (every cause, with its evidence) and how it went."""

    run: str | None = None
    decided_at: str | None = None
    causes: list[str] | None = Field(
        default=None, description="drift, performance, schedule and/or newData, as they coincided."
    )
    metric: str | None = Field(default=None, description="The degraded performance metric (cause performance).")
    value: float | None = Field(default=None, description="Its live value when the run was decided.")
    labels: int | None = Field(default=None, description="The labels that value rests on.")
    feature: str | None = None
    method: str | None = None
    score: float | None = None
    window: str | None = None
    version: int | None = Field(default=None, description="The serving version whose inputs drifted.")
    scheduled_for: str | None = Field(default=None, description="The fire time the decision answered (schedule).")
    cron: str | None = Field(default=None, description="The cron of that fire (cause schedule).")
    time_zone: str | None = Field(default=None, description="Its time zone (cause schedule).")
    dataset: str | None = Field(default=None, description="The Dataset onNewData watched when the run was decided.")
    dataset_version: str | None = Field(default=None, description="Its Ready version then.")
    previous_dataset_version: str | None = Field(
        default=None, description="The version the serving version was trained on (cause newData)."
    )
    schedule: str | None = Field(
        default=None, description="The schedule ('<cron> <timeZone>') scheduleSince and nextScheduledAt refer to."
    )
    schedule_since: str | None = Field(
        default=None, description="When the operator first saw that schedule: earlier fires are never due."
    )
    next_scheduled_at: str | None = Field(
        default=None, description="When the schedule next asks for a run (a deferred fire: the cooldown's end)."
    )
    phase: str | None = None
    model_version: str | None = None
    model_version_phase: str | None = None
    message: str | None = None
