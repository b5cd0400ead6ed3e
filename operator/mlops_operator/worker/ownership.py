"""The worker's side of model ownership: the first registration makes this namespace the owner.

The operator refuses a TrainingRun for another namespace's model before any Job exists; this check at
registration closes the race of two namespaces starting runs for one new model name at once (the
registry's create is atomic: one wins, the other finds the winner's tag and fails permanently).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import contract
from ..planning.ownership import ModelOwnership, refusal
from .errors import PermanentError
from .tracking import as_worker_error

if TYPE_CHECKING:
    from mlflow import MlflowClient


def claim_model(mlflow_client: MlflowClient, name: str, namespace: str) -> None:
    """Create registered model `name` owned by `namespace`, or check that `namespace` owns it already."""
    from mlflow.exceptions import MlflowException

    try:
        mlflow_client.create_registered_model(name, tags={contract.TAG_OWNER_NAMESPACE: namespace})
        return
    except MlflowException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise as_worker_error(error, f"create registered model '{name}'") from error
    try:
        model = mlflow_client.get_registered_model(name)
    except MlflowException as error:
        raise as_worker_error(error, f"read registered model '{name}'") from error
    tags = [{"key": key, "value": value} for key, value in (model.tags or {}).items()]
    refused = refusal(namespace, ModelOwnership.of(name, {"tags": tags}), "register")
    if refused is not None:
        raise PermanentError(refused.message)
