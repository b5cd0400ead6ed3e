"""API types of mlops.dev/v1alpha1; the single source of truth for the CRDs."""

from .common import API_VERSION, GROUP, VERSION, Condition, parse_duration
from .dataset import DatasetSpec, DatasetStatus
from .deployment import DeploymentSpec, DeploymentStatus
from .kinds import ALL_KINDS, DATASET, DEPLOYMENT, MODEL_VERSION, TRAINING_RUN, Kind
from .modelversion import ModelVersionSpec, ModelVersionStatus
from .trainingrun import TrainingRunSpec, TrainingRunStatus

__all__ = [
    "ALL_KINDS",
    "API_VERSION",
    "DATASET",
    "DEPLOYMENT",
    "GROUP",
    "MODEL_VERSION",
    "TRAINING_RUN",
    "VERSION",
    "Condition",
    "DatasetSpec",
    "DatasetStatus",
    "DeploymentSpec",
    "DeploymentStatus",
    "Kind",
    "ModelVersionSpec",
    "ModelVersionStatus",
    "TrainingRunSpec",
    "TrainingRunStatus",
    "parse_duration",
]
