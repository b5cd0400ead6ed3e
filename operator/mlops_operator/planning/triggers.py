"""The clock and data triggers of retraining: a schedule's due fire and a new Dataset version.

Both feed `planning.retraining.due_causes`, the one decision every trigger goes through. Pure: the
schedule is judged from spec, status and the time; the Dataset from what the store showed the gather.

A scheduled fire is due once it lies after the later of the last retraining decision and the time the
operator first saw the schedule (`status.retraining.scheduleSince`): a new Deployment or a changed
schedule fires no backlog, any number of missed fires make one run (as a CronJob without a starting
deadline), and a fire the cooldown or a run in flight holds back stays due until they let it through.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from ..api.common import parse_duration
from ..api.deployment import DeploymentSpec, DeploymentStatus
from ..api.retraining import Retraining, RetrainingStatus, Schedule
from .observed import WatchedDataset
from .plan import Obj, Plan, parse_time, rfc3339

INVALID_SCHEDULE = "InvalidSchedule"
SCHEDULE_NOTE = "spec.retraining.triggers.schedule is ignored: "
MIN_WAKE_SECONDS = 0.5


@dataclass(frozen=True)
class ScheduleState:
    """Where a valid schedule stands now: since when it is known, the fire that is due, and the next one."""

    key: str  # "<cron> <timeZone>": the schedule `since` belongs to
    since: datetime
    due: datetime | None  # the latest fire after the last decision and `since`, at or before now
    next_fire: datetime  # the first fire after now


def schedule_key(schedule: Schedule) -> str:
    """The schedule as one string: its cron (single-spaced) and time zone."""
    return f"{' '.join(schedule.cron.split())} {schedule.time_zone}"


def schedule_error(schedule: Schedule) -> str | None:
    """Why the zone or the cron cannot be used (what the CRD schema cannot tell); None when both can."""
    try:
        zone = ZoneInfo(schedule.time_zone)
    except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError; a folder name an OSError
        return f"unknown time zone '{schedule.time_zone}' (use an IANA name such as UTC or Europe/Berlin)"
    try:
        next(CronSim(schedule.cron, datetime(2000, 1, 1, tzinfo=zone)))
    except CronSimError as error:
        return f"cron '{schedule.cron}' is not valid: {error}"
    return None


def schedule_state(retraining: Retraining, status: DeploymentStatus, now: datetime) -> ScheduleState | None:
    """The schedule's state now; None without a schedule or with one that cannot be used."""
    schedule = retraining.triggers.schedule
    if schedule is None or schedule_error(schedule) is not None:
        return None
    key, zone = schedule_key(schedule), ZoneInfo(schedule.time_zone)
    recorded = status.retraining
    since = parse_time(recorded.schedule_since) if recorded is not None and recorded.schedule == key else None
    since = since or now.replace(microsecond=0)  # first seen now: nothing before it is due
    decided = parse_time(status.last_retraining_at)
    baseline = max(since, decided) if decided is not None else since
    first = next(CronSim(schedule.cron, baseline.astimezone(zone)))
    due = None
    if first <= now:  # at least one fire was missed or is now: the latest of them stands for all
        latest = now.replace(microsecond=0) + timedelta(seconds=1)
        due = next(CronSim(schedule.cron, latest.astimezone(zone), reverse=True))
    return ScheduleState(key, since, due, next(CronSim(schedule.cron, now.astimezone(zone))))


def scheduled_fire(spec: DeploymentSpec, status: DeploymentStatus, now: datetime) -> datetime | None:
    """The fire time the schedule asks a run for now, if it asks."""
    retraining = spec.retraining
    state = schedule_state(retraining, status, now) if retraining is not None else None
    return state.due if state is not None else None


def track_schedule(plan: Plan, status: DeploymentStatus, retraining: Retraining, now: datetime) -> None:
    """After the decision: record since when the schedule is known and when it next asks, and wake then."""
    schedule = retraining.triggers.schedule
    error = schedule_error(schedule) if schedule is not None else None
    state = schedule_state(retraining, status, now)
    if schedule is None and (status.retraining is None or status.retraining.schedule is None):
        return
    current = status.retraining or RetrainingStatus()
    if state is None:
        current.schedule = current.schedule_since = current.next_scheduled_at = None
    else:
        ask = state.next_fire if state.due is None else state.due
        decided = parse_time(status.last_retraining_at)
        if state.due is not None and decided is not None:  # a fire held back by the cooldown waits for its end
            ask = max(ask, decided + parse_duration(retraining.cooldown))
        current.schedule, current.schedule_since = state.key, rfc3339(state.since)
        current.next_scheduled_at = rfc3339(ask)
        if ask > now:
            wake = max(MIN_WAKE_SECONDS, (ask - now).total_seconds())
            plan.requeue_after = wake if plan.requeue_after is None else min(plan.requeue_after, wake)
    if error is not None:
        current.message = with_schedule_note(current.message, error)
    status.retraining = current


def schedule_problem(spec: DeploymentSpec) -> tuple[str, str] | None:
    """(reason, message) for Degraded while retraining is on with a schedule that cannot be used."""
    retraining = spec.retraining
    schedule = retraining.triggers.schedule if retraining is not None and retraining.enabled else None
    error = schedule_error(schedule) if schedule is not None else None
    return (INVALID_SCHEDULE, SCHEDULE_NOTE + error) if error is not None else None


def with_schedule_note(message: str | None, error: str) -> str:
    """The retraining message with the invalid schedule said after it."""
    return f"{message}; {SCHEDULE_NOTE}{error}" if message else f"{SCHEDULE_NOTE}{error}"


def without_schedule_note(message: str | None) -> str | None:
    """The retraining message as the decision and the outcome wrote it (each pass adds the note anew)."""
    if message is None or SCHEDULE_NOTE not in message:
        return message
    return message.split(SCHEDULE_NOTE, 1)[0].removesuffix("; ") or None


def watched_dataset_name(spec: DeploymentSpec, serving_run: Obj | None) -> str | None:
    """The Dataset onNewData watches: the explicit template's datasetRef, else that of the serving version's run."""
    retraining = spec.retraining
    if retraining is None or not retraining.enabled or not retraining.triggers.on_new_data:
        return None
    template = retraining.training_run_template or (serving_run or {}).get("spec") or {}
    name = (template.get("datasetRef") or {}).get("name")
    return str(name) if name else None


def watched_dataset(name: str, dataset: Obj | None, serving_run: Obj | None, last_run: Obj | None) -> WatchedDataset:
    """The watched Dataset from store summaries (absent: no phase), with the versions runs on it trained on."""

    def trained_on(run: Obj | None) -> str | None:
        on_it = ((run or {}).get("spec") or {}).get("datasetRef") or {}
        return ((run or {}).get("status") or {}).get("datasetVersion") if on_it.get("name") == name else None

    status = (dataset or {}).get("status") or {}
    return WatchedDataset(
        name, status.get("phase"), status.get("version"), trained_on(serving_run), trained_on(last_run)
    )


def new_dataset_version(
    spec: DeploymentSpec, status: DeploymentStatus, data: WatchedDataset | None
) -> tuple[str, str] | None:
    """(previous, new) when the watched Dataset is Ready with a version no run behind the serving version or
    the last decision was trained on; None otherwise, and when no such version is known to compare with."""
    retraining = spec.retraining
    if retraining is None or not retraining.triggers.on_new_data or data is None:
        return None
    if data.phase != "Ready" or not data.version:
        return None
    last = status.retraining
    decided = last.dataset_version if last is not None and last.dataset == data.name else None
    known = [v for v in (data.trained_on, decided, data.last_run_trained_on) if v]
    if not known or data.version in known:
        return None
    return known[0], data.version
