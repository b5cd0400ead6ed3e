"""What a reconcile observed: the typed object, its children, and every outside read or its error.

The controller fills this in one gather; the planner decides from it alone. A read that was not due
is None; a read that failed carries its error, so an outage is data the planner decides on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..api.dataset import DatasetSpec, DatasetStatus
from ..api.deployment import DeploymentSpec, DeploymentStatus
from ..api.trainingrun import TrainingRunSpec, TrainingRunStatus
from ..integrations.mlflow import MlflowError, RunInfo
from .analysis import NO_PROMETHEUS, MetricReading
from .conflicts import NameConflict
from .jobs import JobOutcome, WorkerSettings
from .ownership import ModelOwnership
from .plan import Meta, Obj
from .serving import ServerSettings, ready_replicas
from .shadow import ShadowReadings

Series = list[tuple[dict[str, str], float]]


@dataclass(frozen=True)
class Tracks:
    """The observed serving objects: the tracks' apps/v1 Deployments, the Services, the HPA and the budgets."""

    stable: Obj | None = None
    canary: Obj | None = None
    service: Obj | None = None
    shadow: Obj | None = None  # the shadow track's apps/v1 Deployment (spec.strategy.canary.shadow)
    shadow_service: Obj | None = None
    autoscaler: Obj | None = None  # the stable track's HorizontalPodAutoscaler (spec.autoscaling)
    stable_budget: Obj | None = None  # each serving track's PodDisruptionBudget
    canary_budget: Obj | None = None

    @property
    def shadow_ready(self) -> int:
        """Ready pods of the shadow track's current template."""
        return ready_replicas(self.shadow)

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
class PerformanceReadings:
    """One performance check's feedback series (reading name -> every version and track), or why there are none."""

    version: int
    series: dict[str, Series] | None = None
    error: str | None = None


@dataclass(frozen=True)
class WatchedDataset:
    """The Dataset onNewData watches, as the store shows it, and the versions runs on it were trained on."""

    name: str
    phase: str | None = None  # None: not in the store (absent, or not seen yet)
    version: str | None = None
    trained_on: str | None = None  # the serving version's run's dataset version, when that run used this Dataset
    last_run_trained_on: str | None = None  # the last retraining run's, likewise


@dataclass(frozen=True)
class RetrainingObserved:
    """The last retraining run and its ModelVersion (store summaries), and the run spec to retrain with."""

    last_run: Obj | None = None
    last_version: Obj | None = None
    source_spec: Obj | None = None  # the spec of the TrainingRun behind the serving version, when read
    source_error: str | None = None
    source_read: bool = False  # False: not read this pass (the planner asks for it on the next)
    dataset: WatchedDataset | None = None  # None: onNewData is off, or no template names a Dataset


@dataclass(frozen=True)
class DeploymentObserved:
    """Everything one Deployment pass read."""

    meta: Meta
    spec: DeploymentSpec
    status: DeploymentStatus
    server: ServerSettings
    prometheus_url: str | None = None  # spec.monitoring.prometheusUrl, else the operator's default
    prometheus_refused: str | None = None  # why spec.monitoring.prometheusUrl is not used (not allowed by the chart)
    tracks: Tracks = field(default_factory=Tracks)
    approved: dict[int, str] = field(default_factory=dict)  # version -> ModelVersion name, Approved for the alias
    holder_version: int | None = None  # the alias holder in MLflow (alias mode); None: none, or not known
    holder_error: str | None = None  # why the holder could not be read (MLflow down)
    ownership: ModelOwnership | None = None  # the served model's owner and readers; None: not known
    ownership_error: str | None = None  # why ownership could not be read (MLflow down)
    analysis: list[MetricReading] | None = None  # this pass's readings; None when none were due
    drift: DriftReadings | None = None  # None when no check was due
    performance: PerformanceReadings | None = None  # None when no check was due
    shadow: ShadowReadings | None = None  # None when no shadow check was due
    retraining: RetrainingObserved = field(default_factory=RetrainingObserved)
    conflicts: tuple[NameConflict, ...] = ()  # child names held by objects this Deployment does not control
    requested_by: str | None = None  # the field manager that last wrote spec.rolloutRequest (managedFields)

    @property
    def no_prometheus_reason(self) -> str:
        """Why no Prometheus is asked: the URL the chart does not allow, or none configured at all."""
        return self.prometheus_refused or NO_PROMETHEUS


@dataclass(frozen=True)
class WorkerJobObserved:
    """A worker Job as one pass read it: the Job, its outcome and, once it finished, the MLflow run it logged.

    A Job that could not be read is not known to be absent (`job_error`); a failed Job whose pods could not
    be read has no reliable reason yet (`pods_error`); a finished Job whose run could not be read has no
    result yet (`run_error`). Nothing final is decided from a read that failed.
    """

    name: str  # the deterministic name of the Job the status should show
    job: Obj | None = None  # None: it does not exist, or was not read (`job_error` says which)
    outcome: JobOutcome | None = None  # from the Job and, when it failed, its pods' termination states
    run: RunInfo | None = None  # the newest run its pods logged; None: not finished, or not in MLflow yet
    job_error: str | None = None  # the API server could not show the Job
    pods_error: str | None = None  # the API server could not show a failed Job's pods
    run_error: MlflowError | None = None  # MLflow could not be asked for the finished Job's run


@dataclass(frozen=True)
class DatasetObserved:
    """Everything one Dataset pass read: the typed object and the check whose result its status should show."""

    meta: Meta
    spec: DatasetSpec
    status: DatasetStatus
    body: Obj  # the object as read: the owner of its Jobs, passed to the worker unchanged
    worker: WorkerSettings
    check: WorkerJobObserved  # the wanted check (`planning.dataset.wanted_check`); not read once recorded
    conflicts: tuple[NameConflict, ...] = ()  # child names held by objects this Dataset does not control
    missing_pod_refs: tuple[str, ...] = ()  # what the check's pods would name and does not exist (no Job yet)


@dataclass(frozen=True)
class TrainingDataset:
    """The Dataset a TrainingRun waits for: its typed status, and the object the worker receives pinned."""

    body: Obj
    status: DatasetStatus


@dataclass(frozen=True)
class TrainingRunObserved:
    """Everything one TrainingRun pass read: the typed object, its one Job, and its Dataset while no Job exists."""

    meta: Meta
    spec: TrainingRunSpec
    status: TrainingRunStatus
    body: Obj  # the object as read: the owner of its Job, passed to the worker unchanged
    worker: WorkerSettings
    job: WorkerJobObserved  # a finished run only has the store's view of its Job (it may expire now)
    data_not_before: str | None = None  # the data-not-before annotation: the run needs a re-check after it
    dataset: TrainingDataset | None = None  # read only while no Job exists; None: absent (or `dataset_error`)
    dataset_error: str | None = None  # the API server could not show the Dataset
    # The registered model's owner, read with the Dataset (before a Job exists): None when not read.
    ownership: ModelOwnership | None = None
    ownership_error: MlflowError | None = None  # MLflow could not say who owns the model
    conflicts: tuple[NameConflict, ...] = ()  # child names held by objects this TrainingRun does not control
    missing_pod_refs: tuple[str, ...] = ()  # what the Job's pods would name and does not exist (no Job yet)
    # A trial search (spec.trials) before its refit: the current round's Indexed Job (its `run_error` says the
    # trial runs could not be read) and every trial child run of this TrainingRun, from one search.
    trial_job: WorkerJobObserved | None = None
    trial_runs: tuple[RunInfo, ...] = ()
    finished_trial_jobs: tuple[Obj, ...] = ()  # a finished run: its round Jobs in the store (for their TTL)
