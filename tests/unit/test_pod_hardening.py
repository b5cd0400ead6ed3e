"""Every pod the operator creates (worker Jobs, model servers) runs restricted, without an API token, and gets
credentials only through envFrom of the namespace's Secret, never as values in its spec."""

from __future__ import annotations

from dataclasses import replace

from mlops_operator.api.deployment import DeploymentSpec
from mlops_operator.planning.jobs import WorkerSettings, worker_job
from mlops_operator.planning.plan import Meta
from mlops_operator.planning.serving import ServerSettings, server_deployment

from .builders import SERVER, WORKER

OWNER = {
    "apiVersion": "mlops.dev/v1alpha1",
    "kind": "TrainingRun",
    "metadata": {"namespace": "ns", "name": "iris", "uid": "u1", "generation": 1},
    "spec": {},
}


def _pod_specs(worker: WorkerSettings = WORKER, server_settings: ServerSettings = SERVER) -> list[dict]:
    job = worker_job(
        owner=OWNER,
        name="iris-train-1",
        command="train",
        settings=worker,
        extra_env={},
        resources=None,
        backoff_limit=2,
        active_deadline_seconds=600,
        ttl_seconds_after_finished=None,
    )
    spec = DeploymentSpec.model_validate({"model": {"registeredModel": "iris", "alias": "production"}})
    meta = Meta.of({"metadata": {"namespace": "ns", "name": "iris", "uid": "u2", "generation": 1}})
    server = server_deployment(meta, spec, "stable", 1, 2, server_settings)
    return [job["spec"]["template"]["spec"], server["spec"]["template"]["spec"]]


def test_worker_and_server_pods_mount_no_service_account_token_and_run_restricted() -> None:
    for pod in _pod_specs():
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False


def test_server_pods_refuse_code_from_artifacts_unless_the_deployment_opts_in() -> None:
    meta = Meta.of({"metadata": {"namespace": "ns", "name": "iris", "uid": "u2", "generation": 1}})
    for allowed in (False, True):
        spec = DeploymentSpec.model_validate(
            {"model": {"registeredModel": "iris", "version": 1}, "server": {"allowUnsafeModelFormats": allowed}}
        )
        pod = server_deployment(meta, spec, "stable", 1, 1, SERVER)["spec"]["template"]["spec"]
        env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
        wanted = "true" if allowed else "false"
        assert env["MLOPS_ALLOW_UNSAFE_MODEL_FORMATS"] == env["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == wanted


def test_credentials_come_from_the_namespaces_secret_through_env_from_only_when_configured() -> None:
    assert all("envFrom" not in pod["containers"][0] for pod in _pod_specs())
    pods = _pod_specs(
        replace(WORKER, credentials_secret="mlops-credentials"), replace(SERVER, credentials_secret="mlops-credentials")
    )
    for pod in pods:
        container = pod["containers"][0]
        assert container["envFrom"] == [{"secretRef": {"name": "mlops-credentials", "optional": True}}]
        # The operator's own settings come after envFrom in `env`, so no key of the Secret overrides them.
        assert "MLFLOW_TRACKING_URI" in {e["name"] for e in container["env"]}


def test_the_prediction_id_keys_reach_model_servers_only_from_their_own_secret() -> None:
    server = replace(SERVER, credentials_secret="mlops-credentials", feedback_secret="mlops-feedback")
    worker = replace(WORKER, credentials_secret="mlops-credentials")
    meta = Meta(namespace="ns", name="iris", uid="u2", generation=1)
    spec = DeploymentSpec.model_validate({"model": {"registeredModel": "iris", "alias": "production"}})
    container = server_deployment(meta, spec, "stable", 1, 1, server)["spec"]["template"]["spec"]["containers"][0]
    keys = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert keys == {
        "MLOPS_FEEDBACK_KEY": {"name": "mlops-feedback", "key": "key", "optional": True},
        "MLOPS_FEEDBACK_KEY_PREVIOUS": {"name": "mlops-feedback", "key": "previous-key", "optional": True},
    }
    assert container["envFrom"] == [{"secretRef": {"name": "mlops-credentials", "optional": True}}]
    for pod in _pod_specs(worker, replace(SERVER, credentials_secret="mlops-credentials")):
        assert "mlops-feedback" not in str(pod), "a Job or a server without the setting names the feedback Secret"


def test_late_labels_count_up_to_the_deployments_feedback_max_age() -> None:
    server = replace(SERVER, feedback_secret="mlops-feedback")
    meta = Meta(namespace="ns", name="iris", uid="u3", generation=1)

    def max_age(server_spec: dict[str, object], settings: ServerSettings = server) -> str | None:
        spec = DeploymentSpec.model_validate(
            {"model": {"registeredModel": "iris", "alias": "production"}, "server": server_spec}
        )
        container = server_deployment(meta, spec, "stable", 1, 1, settings)["spec"]["template"]["spec"]["containers"][0]
        return {e["name"]: e.get("value") for e in container["env"]}.get("MLOPS_FEEDBACK_MAX_AGE_S")

    assert max_age({}) == "604800"  # the API's default, 168h
    assert max_age({"feedbackMaxAge": "90s"}) == "90"
    assert max_age({"feedbackMaxAge": "1h30m"}) == "5400"
    assert max_age({"feedbackMaxAge": "90s"}, SERVER) is None  # no keys, no ids, nothing to age
