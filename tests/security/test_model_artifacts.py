"""A hostile artifact on the real cluster: a pickle whose load writes a file never runs in a server pod
unless the Deployment opts in with `server.allowUnsafeModelFormats` (then it does: the payload is real)."""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path
from typing import Any

import httpx
from mlops_operator.planning.serving import SERVER_PORT
from sklearn.linear_model import LogisticRegression

from tests.fixtures.cluster import Kube, OperatorProcess, wait_for
from tests.fixtures.models import register_logged_as
from tests.integration.test_serving import iris_frame, set_alias


class Hostile:
    """Unpickling it calls Path.write_text: what a crafted model in a shared artifact store could do instead."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (Path(self.path).write_text, ("hostile model code ran",))


def register_hostile(kube: Kube, model_name: str, marker: Path, owner: str) -> int:
    """A cloudpickled model with the payload, registered with a correct digest (the digest is not the defence)."""
    import mlflow
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    frame, target = iris_frame()
    model = LogisticRegression(max_iter=500).fit(frame.to_numpy(), target)
    model.hostile_ = Hostile(str(marker))
    client = mlflow.MlflowClient(kube.mlflow_url, registry_uri=kube.mlflow_url)
    experiment = client.get_experiment_by_name("serving-tests")
    experiment_id = experiment.experiment_id if experiment else client.create_experiment("serving-tests")
    with _use_tracking_uri(kube.mlflow_url):
        return register_logged_as(
            client, experiment_id, model_name, model, frame, serialization_format="cloudpickle", owner=owner
        )


def manifest(model: str, allow_unsafe: bool) -> str:
    return textwrap.dedent(
        f"""
        apiVersion: mlops.dev/v1alpha1
        kind: Deployment
        metadata: {{name: pickled}}
        spec:
          model: {{registeredModel: {model}, alias: production}}
          replicas: 1
          server: {{allowUnsafeModelFormats: {str(allow_unsafe).lower()}}}
        """
    )


def readiness(kube: Kube, namespace: str) -> list[dict[str, Any]]:
    """What each running server pod of the Deployment says on /v2/health/ready."""
    pods = kube.json("get", "pods", "-n", namespace, "-l", "mlops.dev/deployment=pickled")["items"]
    answers = []
    for pod in pods:
        ip = (pod.get("status") or {}).get("podIP")
        if not ip or pod["metadata"].get("deletionTimestamp"):
            continue
        try:
            answers.append(httpx.get(f"http://{ip}:{SERVER_PORT}/v2/health/ready", timeout=2).json())
        except httpx.HTTPError:
            continue  # not listening yet
    return answers


def test_a_hostile_pickle_never_runs_in_a_server_pod_unless_the_deployment_opts_in(
    crds_installed: Kube, namespace: str, operator_process: OperatorProcess, tmp_path: Path
) -> None:
    kube, model = crds_installed, f"pickled-{namespace}"
    marker = Path("/tmp") / f"mlops-hostile-{uuid.uuid4().hex}"
    version = register_hostile(kube, model, marker, namespace)
    assert kube.state_dir is not None

    def written() -> list[Path]:
        """The marker wherever a server pod's /tmp is: its emptyDir on the node (run from the image) or the
        host's /tmp (a host process)."""
        in_pods = list((kube.state_dir or Path()).glob(f"pods/*/volumes/tmp/{marker.name}"))
        return in_pods + ([marker] if marker.exists() else [])

    set_alias(kube, model, version)
    try:
        kube.apply(manifest(model, allow_unsafe=False), namespace)
        refused = wait_for(
            "the server pod to refuse the pickle",
            lambda: next((a for a in readiness(kube, namespace) if a.get("state") == "failed"), None),
            timeout=120,
        )
        assert "cloudpickle" in refused["reason"] and "allowUnsafeModelFormats" in refused["reason"], refused
        assert not written(), "the pickle ran in a server pod that did not opt in"

        kube.apply(manifest(model, allow_unsafe=True), namespace)
        wait_for(
            "the opted-in server to load the model",
            lambda: any(a.get("ready") for a in readiness(kube, namespace)),
            timeout=150,
        )
        assert written(), "with the opt-in the payload runs: the test's hostile model is real"
    except AssertionError:
        print(kube.run("get", "mlops,deploy,pods,events", "-n", namespace, check=False).stdout)
        print(operator_process.log_tail(80))
        raise
    finally:
        for path in written():
            path.unlink(missing_ok=True)
