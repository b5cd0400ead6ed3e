"""The kinds: their models and the metadata their CRDs carry."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel

from .dataset import DatasetSpec, DatasetStatus
from .deployment import DeploymentSpec, DeploymentStatus
from .modelversion import ModelVersionSpec, ModelVersionStatus
from .notification import NotificationPolicySpec, NotificationPolicyStatus
from .trainingrun import TrainingRunSpec, TrainingRunStatus


@dataclass(frozen=True)
class PrinterColumn:
    """One `kubectl get` column."""

    name: str
    json_path: str
    type: str = "string"
    priority: int = 0
    description: str = ""


@dataclass(frozen=True)
class Kind:
    """A custom resource kind and how its CRD presents it."""

    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    spec: type[BaseModel]
    status: type[BaseModel]
    description: str
    columns: tuple[PrinterColumn, ...] = field(default=())
    # CEL rules on the object's metadata.name (rule, message): names its children could not carry.
    name_rules: tuple[tuple[str, str], ...] = field(default=())


_AGE = PrinterColumn("Age", ".metadata.creationTimestamp", "date")
_READY = PrinterColumn("Ready", '.status.conditions[?(@.type=="Ready")].status')

DATASET = Kind(
    kind="Dataset",
    plural="datasets",
    singular="dataset",
    short_names=("mlds",),
    spec=DatasetSpec,
    status=DatasetStatus,
    description="A data source, its expected schema and validation rules; each content change is a version.",
    columns=(
        PrinterColumn("Phase", ".status.phase"),
        PrinterColumn("Rows", ".status.rows", "integer"),
        PrinterColumn("Version", ".status.version", priority=1),
        _READY,
        _AGE,
    ),
)
TRAINING_RUN = Kind(
    kind="TrainingRun",
    plural="trainingruns",
    singular="trainingrun",
    short_names=("tr", "trun"),
    spec=TrainingRunSpec,
    status=TrainingRunStatus,
    description="One training Job on a pinned Dataset version; success registers a ModelVersion.",
    columns=(
        PrinterColumn("Dataset", ".spec.datasetRef.name"),
        PrinterColumn("Phase", ".status.phase"),
        PrinterColumn("Model", ".status.modelVersion"),
        PrinterColumn("Estimator", ".spec.estimator", priority=1),
        PrinterColumn("Job", ".status.jobName", priority=1),
        _AGE,
    ),
)
MODEL_VERSION = Kind(
    kind="ModelVersion",
    plural="modelversions",
    singular="modelversion",
    short_names=("mv", "mver"),
    spec=ModelVersionSpec,
    status=ModelVersionStatus,
    description="A version in the MLflow model registry, its promotion gates and alias.",
    columns=(
        PrinterColumn("Model", ".spec.registeredModel"),
        PrinterColumn("Version", ".spec.version", "integer"),
        PrinterColumn("Alias", ".spec.promotion.alias"),
        PrinterColumn("Phase", ".status.phase"),
        _AGE,
    ),
)
DEPLOYMENT = Kind(
    kind="Deployment",
    plural="deployments",
    singular="deployment",
    short_names=("mldeploy", "mld"),
    # The Service is named after it (a DNS-1035 label) and the tracks `<name>-canary` carry it as a label.
    name_rules=(
        (
            "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 56",
            "metadata.name must start with a letter, hold only lowercase letters, digits and '-', and be at most "
            "56 characters: it names the Service and the `<name>-canary` Deployment",
        ),
    ),
    spec=DeploymentSpec,
    status=DeploymentStatus,
    description=(
        "deployments.mlops.dev (short name mldeploy): serves a registered model and rolls out new "
        "versions as canaries with automatic analysis and rollback."
    ),
    columns=(
        PrinterColumn("Model", ".spec.model.registeredModel"),
        PrinterColumn("Phase", ".status.phase"),
        PrinterColumn("Stable", ".status.stableVersion", "integer"),
        PrinterColumn("Canary", ".status.canaryVersion", "integer"),
        PrinterColumn("Weight", ".status.canaryWeight", "integer"),
        PrinterColumn("Ready", ".status.readyReplicas", "integer"),
        PrinterColumn("Drift", ".status.drift.score", "number"),
        PrinterColumn("Drift-Feature", ".status.drift.feature", priority=1),
        PrinterColumn("Last-Retraining", ".status.lastRetrainingRun", priority=1),
        PrinterColumn("Endpoint", ".status.endpoint", priority=1),
        _AGE,
    ),
)

NOTIFICATION_POLICY = Kind(
    kind="NotificationPolicy",
    plural="notificationpolicies",
    singular="notificationpolicy",
    short_names=("mlnotify",),
    spec=NotificationPolicySpec,
    status=NotificationPolicyStatus,
    description="Where this namespace's ML events (trained, promoted, canary steps, rollbacks, drift, ...) are sent.",
    columns=(
        PrinterColumn("Phase", ".status.phase"),
        PrinterColumn("Destinations", ".spec.destinations[*].name"),
        _READY,
        _AGE,
    ),
)

ALL_KINDS: tuple[Kind, ...] = (DATASET, TRAINING_RUN, MODEL_VERSION, DEPLOYMENT, NOTIFICATION_POLICY)
