"""The worker claims a new model for its namespace and refuses one another namespace owns (real sqlite registry)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlops_operator.contract import TAG_OWNER_NAMESPACE, TAG_READER_NAMESPACES
from mlops_operator.worker.errors import PermanentError
from mlops_operator.worker.ownership import claim_model


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> MlflowClient:
    root: Path = tmp_path_factory.mktemp("registry")
    return MlflowClient(tracking_uri=f"sqlite:///{root}/mlflow.db")


def test_the_first_registration_makes_the_namespace_the_owner_and_it_may_register_again(client: MlflowClient) -> None:
    claim_model(client, "fraud", "team-a")
    assert client.get_registered_model("fraud").tags[TAG_OWNER_NAMESPACE] == "team-a"
    claim_model(client, "fraud", "team-a")  # a later run, or a retried pod


def test_another_namespace_may_not_register_even_as_a_reader(client: MlflowClient) -> None:
    claim_model(client, "churn", "team-a")
    client.set_registered_model_tag("churn", TAG_READER_NAMESPACES, "team-b")
    with pytest.raises(PermanentError, match="belongs to namespace team-a: namespace team-b may not register"):
        claim_model(client, "churn", "team-b")
    assert client.get_registered_model("churn").tags[TAG_OWNER_NAMESPACE] == "team-a"


def test_a_model_created_outside_the_operator_is_not_claimed_by_use(client: MlflowClient) -> None:
    client.create_registered_model("legacy")
    with pytest.raises(PermanentError, match="no owner namespace"):
        claim_model(client, "legacy", "team-a")
    assert TAG_OWNER_NAMESPACE not in client.get_registered_model("legacy").tags
