"""Credentials come from Secrets: the whole pipeline (validate, train, register, promote, serve) against an
MLflow that requires authentication (MLflow's own basic-auth app, started by the project's local-stack
code). The operator's client gets the admin's credentials as the chart's `credentials.operatorSecret`
would give them; the namespace's Jobs and model servers get the team's MLflow user from the namespace's
Secret through `envFrom`, resolved by the kubelet: no credential appears in any object the operator
writes, and what the team's pods created belongs to the team's MLflow user."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from mlops_operator.kubeapi import Kube as KubeApi
from mlops_operator.kubeapi import connection_from_env
from mlops_operator.localcluster.mlflowauth import MlflowAuth, create_user, mlflow_server_argv
from mlops_operator.traffic import endpoints

from tests.fixtures.cluster import Kube, OperatorProcess, wait_for
from tests.integration.test_serving import COLUMNS, iris_frame
from tests.integration.test_training import iris_dataset, sample_data, training_run, wait_phase

AUTH_PORT = 15010  # beside the session MLflow (15000), on every address so pods reach it over the bridge
SECRET_NAME = "mlops-credentials"


@pytest.fixture
def auth_mlflow(crds_installed: Kube, tmp_path: Path) -> Iterator[tuple[str, MlflowAuth]]:
    root = tmp_path / "mlflow"
    auth = MlflowAuth(root / "auth")
    argv = mlflow_server_argv(root, "0.0.0.0", AUTH_PORT, auth=True, workers=2)
    url = f"http://{urlparse(crds_installed.mlflow_url).hostname}:{AUTH_PORT}"
    with (tmp_path / "mlflow.log").open("ab") as log:
        server = subprocess.Popen(argv, env={**os.environ, **auth.env()}, stdout=log, stderr=subprocess.STDOUT)
    try:
        # MLflow's start (imports, the auth database's migrations) takes minutes beside the other test workers.
        wait_for("the authenticated MLflow", lambda: _healthy(url) or server.poll() is not None, timeout=300)
        assert server.poll() is None, (tmp_path / "mlflow.log").read_text()[-3000:]
        yield url, auth
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def deployment(model: str) -> str:
    return textwrap.dedent(
        f"""
        apiVersion: mlops.dev/v1alpha1
        kind: Deployment
        metadata: {{name: iris}}
        spec: {{model: {{registeredModel: {model}, alias: production}}, replicas: 1}}
        """
    )


@pytest.mark.alone  # beside 4 workers its second MLflow's requests time out (httpx ReadTimeout)
@pytest.mark.timeout(900)  # a second MLflow to start, then the whole pipeline, beside the other workers
def test_the_whole_pipeline_runs_against_an_authenticated_mlflow(
    crds_installed: Kube,
    namespace: str,
    auth_mlflow: tuple[str, MlflowAuth],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kube, (url, auth) = crds_installed, auth_mlflow
    search = f"{url}/api/2.0/mlflow/experiments/search"
    assert httpx.get(search, params={"max_results": 1}).status_code == 401  # authentication is real
    team, password = f"team-{namespace}", secrets.token_urlsafe(18)
    create_user(url, auth, team, password)
    kube.run(
        "create", "secret", "generic", SECRET_NAME, "-n", namespace,
        f"--from-literal=MLFLOW_TRACKING_USERNAME={team}", f"--from-literal=MLFLOW_TRACKING_PASSWORD={password}",
    )  # fmt: skip
    env = {"MLFLOW_TRACKING_URI": url, **auth.client_env(), "MLOPS_WORKLOAD_SECRET": SECRET_NAME}
    op = OperatorProcess(kube, namespace, tmp_path / "operator.log", extra_env=env).start()
    model = f"auth-{namespace}"
    try:
        csv = sample_data("iris", tmp_path / "iris.csv")
        kube.apply(
            "---\n".join([iris_dataset(f"file://{csv}"), training_run("iris-train", model), deployment(model)]),
            namespace,
        )
        assert wait_phase(kube, "datasets.mlops.dev/iris", namespace, {"Ready", "Invalid"}, op, 240) == "Ready"
        assert wait_phase(kube, "trainingrun/iris-train", namespace, {"Succeeded", "Failed"}, op, 300) == "Succeeded"
        assert wait_phase(kube, "mldeploy/iris", namespace, {"Healthy"}, op, 240) == "Healthy"

        # The model server, which loaded the model with the team's credentials, answers.
        monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig))
        address = asyncio.run(endpoints(KubeApi(connection_from_env()), namespace, "iris"))[0]
        frame, _ = iris_frame()
        rows = frame.iloc[[0, 60, 120]]
        answer = httpx.post(
            f"http://{address}/invocations",
            json={"dataframe_split": {"columns": COLUMNS, "data": rows.values.tolist()}},
        )
        assert answer.status_code == 200 and answer.json()["predictions"] == ["setosa", "versicolor", "virginica"], (
            answer.text
        )

        # The registered model is the team user's: it may change it, another team's user may only read it.
        other, other_password = f"other-{namespace}", secrets.token_urlsafe(18)
        create_user(url, auth, other, other_password)
        set_tag = f"{url}/api/2.0/mlflow/registered-models/set-tag"
        tag = {"name": model, "key": "reviewed", "value": "yes"}
        assert httpx.post(set_tag, json=tag, auth=(team, password)).status_code == 200
        assert httpx.post(set_tag, json=tag, auth=(other, other_password)).status_code == 403
        got = httpx.get(
            f"{url}/api/2.0/mlflow/registered-models/get", params={"name": model}, auth=(other, other_password)
        )
        assert got.status_code == 200
        alias = httpx.get(
            f"{url}/api/2.0/mlflow/registered-models/alias",
            params={"name": model, "alias": "production"},
            auth=(team, password),
        )
        assert alias.status_code == 200 and alias.json()["model_version"]["version"] == "1", alias.text

        # Jobs and servers name the Secret; no object the operator wrote holds a credential.
        written = kube.json("get", "jobs,deployments.apps,mlops", "-n", namespace)
        pods = [
            *(o["spec"]["template"]["spec"] for o in written["items"] if o["apiVersion"] in ("batch/v1", "apps/v1")),
        ]
        assert pods and all(
            p["containers"][0]["envFrom"] == [{"secretRef": {"name": SECRET_NAME, "optional": True}}] for p in pods
        )
        text = json.dumps(written)
        assert password not in text and auth.admin_password not in text
        log = op.log_file.read_text(errors="replace")
        assert " 401" not in log and "Unauthorized" not in log, op.log_tail(40)
    except (AssertionError, subprocess.SubprocessError):
        print(kube.run("get", "mlops,jobs,pods,events", "-n", namespace, check=False).stdout)
        print(kube.run("get", "mlops", "-n", namespace, "-o", "jsonpath={..status.message}", check=False).stdout)
        print(op.log_tail(80))
        raise
    finally:
        op.stop()
