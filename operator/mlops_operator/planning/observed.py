"""What a Deployment reconcile observed: the typed object, its children, and every outside read or its error.

The controller fills this in one gather; the planner decides from it alone. A read that was not due
is None; a read that failed carries its error, so an outage is data the planner decides on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..api.deployment import DeploymentSpec, DeploymentStatus
from .analysis import MetricReading
from .ownership import ModelOwnership
from .plan import Meta, Obj
from .serving import ServerSettings, ready_replicas

Series = list[tuple[dict[str, str], float]]


@dataclass(frozen=True)
class Tracks:
    """The observed serving objects: both tracks' apps/v1 Deployments and the Service."""

    stable: Obj | None = None
    canary: Obj | None = None
    service: Obj | None = None

    @property
    def stable_ready(self) -> int:
        """Ready pods of the stable track's current template."""
        return ready_replicas(self.stable)

    @property
    def canary_ready(self) -> int:
        """Ready pods of the canary track's current template."""
        return ready_replicas(self.canary)


@dataclass(frozen=True)
class DriftReadings:
    """One drift check's reads for the serving version: the profile and live bins, or a custom query's series."""

    version: int
    profile: Obj | None = None
    bins: Series | None = None
    nulls: Series | None = None
    custom: Series | None = None
    error: str | None = None


@dataclass(frozen=True)
class RetrainingObserved:
    """The last retraining run and its ModelVersion (store summaries), and the run spec to retrain with."""

    last_run: Obj | None = None
    last_version: Obj | None = None
    source_spec: Obj | None = None  # the spec of the TrainingRun behind the serving version, when read
    source_error: str | None = None
    source_read: bool = False  # False: not read this pass (the planner asks for it on the next)


@dataclass(frozen=True)
class DeploymentObserved:
    """Everything one Deployment pass read."""

    meta: Meta
    spec: DeploymentSpec
    status: DeploymentStatus
    server: ServerSettings
    prometheus_url: str | None = None  # spec.monitoring.prometheusUrl, else the operator's default
    tracks: Tracks = field(default_factory=Tracks)
    approved: dict[int, str] = field(default_factory=dict)  # version -> ModelVersion name, Approved for the alias
    holder_version: int | None = None  # the alias holder in MLflow (alias mode); None: none, or not known
    holder_error: str | None = None  # why the holder could not be read (MLflow down)
    ownership: ModelOwnership | None = None  # the served model's owner and readers; None: not known
    ownership_error: str | None = None  # why ownership could not be read (MLflow down)
    analysis: list[MetricReading] | None = None  # this pass's readings; None when none were due
    drift: DriftReadings | None = None  # None when no check was due
    retraining: RetrainingObserved = field(default_factory=RetrainingObserved)
