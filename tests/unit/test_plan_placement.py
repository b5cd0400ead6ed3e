"""spec.pod on every workload (check Jobs, training Jobs, server tracks) and its merge with the chart's defaults."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pydantic
import pytest
from mlops_operator.api.dataset import DatasetSpec
from mlops_operator.api.deployment import DeploymentSpec
from mlops_operator.api.pod import PodOverrides, env_name_reserved
from mlops_operator.api.trainingrun import TrainingRunSpec
from mlops_operator.controllers.settings import Settings
from mlops_operator.planning.dataset import plan_dataset
from mlops_operator.planning.deployment import plan_deployment
from mlops_operator.planning.placement import merged_pod
from mlops_operator.planning.trainingrun import plan_trainingrun

from .builders import SERVER, WORKER, observe, observe_dataset, observe_trainingrun, track, wanted

NOW = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)

POD: dict[str, Any] = {
    "nodeSelector": {"kubernetes.io/os": "linux", "pool": "ml"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]
            }
        },
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 50, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname"}}
            ]
        },
    },
    "priorityClassName": "ml-batch",
    "serviceAccountName": "team-ml",
    "imagePullSecrets": [{"name": "team-registry"}],
    "env": [
        {"name": "OMP_NUM_THREADS", "value": "4"},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
    ],
    "volumes": [{"name": "ca", "configMap": {"name": "team-ca"}}, {"name": "scratch", "emptyDir": {}}],
    "volumeMounts": [{"name": "ca", "mountPath": "/mnt/ca", "readOnly": True}],
}
GPU = {"limits": {"nvidia.com/gpu": 1, "memory": "4Gi"}}


def _dataset(pod: dict[str, Any] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"source": {"uri": "https://data.example/iris.csv"}, "target": "species"}
    if pod is not None:
        spec["pod"] = pod
    meta = {"namespace": "ns", "name": "iris", "uid": "d-uid", "generation": 1, "resourceVersion": "1"}
    return {"apiVersion": "mlops.dev/v1alpha1", "kind": "Dataset", "metadata": meta, "spec": spec, "status": {}}


def _trainingrun(pod: dict[str, Any] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "datasetRef": {"name": "iris"},
        "estimator": "sklearn.linear_model.LogisticRegression",
        "registeredModel": "iris-classifier",
        "resources": GPU,
    }
    if pod is not None:
        spec["pod"] = pod
    meta = {"namespace": "ns", "name": "iris-train", "uid": "01234567-aaaa", "generation": 1, "resourceVersion": "1"}
    return {"apiVersion": "mlops.dev/v1alpha1", "kind": "TrainingRun", "metadata": meta, "spec": spec, "status": {}}


def _deployment(pod: dict[str, Any] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"model": {"registeredModel": "iris-classifier", "alias": "production"}}
    spec["server"] = {"resources": GPU}
    if pod is not None:
        spec["pod"] = pod
    meta = {"namespace": "ns", "name": "iris", "uid": "dep-uid", "generation": 1}
    return {"apiVersion": "mlops.dev/v1alpha1", "kind": "Deployment", "metadata": meta, "spec": spec, "status": {}}


def _pods(pod: dict[str, Any] | None, chart: PodOverrides | None = None) -> dict[str, dict[str, Any]]:
    """Workload kind -> the pod spec its planner builds, for an object with `pod` and the chart's `chart`."""
    worker, server = replace(WORKER, pod_defaults=chart), replace(SERVER, pod_defaults=chart)
    body = _dataset(pod)
    check = plan_dataset(replace(observe_dataset(body, wanted(body, NOW)), worker=worker), NOW)
    ready = _dataset(None) | {"status": {"phase": "Ready", "version": "sha256:abc"}}
    training = plan_trainingrun(replace(observe_trainingrun(_trainingrun(pod), ready), worker=worker), NOW)
    serving = plan_deployment(replace(observe(_deployment(pod), holder=1), server=server), NOW)
    tracks = {c["metadata"]["name"]: c for c in serving.applies if c["kind"] == "Deployment"}
    return {
        "check": check.creates_after_status[0]["spec"]["template"]["spec"],
        "train": training.creates[0]["spec"]["template"]["spec"],
        "stable": tracks["iris-stable"]["spec"]["template"]["spec"],
        "canary": tracks["iris-canary"]["spec"]["template"]["spec"],
    }


def test_without_spec_pod_the_pods_are_as_before() -> None:
    for kind, pod in _pods(None).items():
        assert not {"nodeSelector", "tolerations", "affinity", "priorityClassName", "imagePullSecrets"} & set(pod), kind
        assert "serviceAccountName" not in pod and pod["volumes"] == [{"name": "tmp", "emptyDir": {}}], kind


@pytest.mark.parametrize("kind", ["check", "train", "stable", "canary"])
def test_every_field_reaches_every_workload_kind(kind: str) -> None:
    pod = _pods(POD)[kind]
    assert pod["nodeSelector"] == POD["nodeSelector"]
    assert pod["tolerations"] == POD["tolerations"]
    assert pod["affinity"] == POD["affinity"]
    assert pod["priorityClassName"] == "ml-batch"
    assert pod["serviceAccountName"] == "team-ml"
    assert pod["imagePullSecrets"] == [{"name": "team-registry"}]
    container = pod["containers"][0]
    assert container["env"][-2:] == POD["env"]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {}}, *POD["volumes"]]
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}, *POD["volumeMounts"]]


@pytest.mark.parametrize("kind", ["check", "train", "stable", "canary"])
def test_placement_leaves_the_hardening_and_the_operators_env_in_place(kind: str) -> None:
    pod = _pods(POD)[kind]
    # A service account names an identity only: the API token stays unmounted.
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    names = [e["name"] for e in container["env"]]
    assert len(names) == len(set(names)), "an extra variable repeats one the operator sets"


def test_every_variable_the_operator_sets_is_reserved() -> None:
    """So no spec.pod.env entry can override one (the CRD's CEL rule and the model refuse reserved names)."""
    pods = _pods(None)
    for kind in ("check", "train", "stable"):
        for env in pods[kind]["containers"][0]["env"]:
            assert env_name_reserved(env["name"]), f"{kind} sets {env['name']}, which spec.pod.env could override"


def test_accelerator_limits_pass_through_to_training_and_server_pods() -> None:
    pods = _pods(POD)
    for kind in ("train", "stable", "canary"):
        assert pods[kind]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1, kind


def test_a_placement_change_rolls_the_server_tracks() -> None:
    def spec_hash(pod: dict[str, Any] | None) -> str:
        plan = plan_deployment(observe(_deployment(pod), holder=1), NOW)
        stable = next(c for c in plan.applies if c["metadata"]["name"] == "iris-stable")
        return str(stable["metadata"]["annotations"]["mlops.dev/spec-hash"])

    assert spec_hash(None) != spec_hash({"nodeSelector": {"pool": "ml"}}) != spec_hash({"nodeSelector": {"pool": "b"}})


CHART = PodOverrides.model_validate(
    {
        "nodeSelector": {"pool": "shared", "kubernetes.io/arch": "amd64"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
        "affinity": {
            "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": "zone"}]},
            "nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "preference": {}}]},
        },
        "priorityClassName": "ml-default",
        "serviceAccountName": "ml-default",
        "imagePullSecrets": [{"name": "platform-registry"}],
        "env": [{"name": "OMP_NUM_THREADS", "value": "1"}, {"name": "TZ", "value": "UTC"}],
        "volumes": [{"name": "ca", "configMap": {"name": "platform-ca"}}],
        "volumeMounts": [{"name": "ca", "mountPath": "/mnt/ca"}],
    }
)


def _merged(own: dict[str, Any] | None) -> dict[str, Any]:
    pod = merged_pod(CHART, PodOverrides.model_validate(own) if own is not None else None)
    return pod.model_dump(mode="json", exclude_none=True) if pod else {}


@pytest.mark.parametrize(
    ("own", "field", "expected"),
    [
        pytest.param(None, "priorityClassName", "ml-default", id="no-spec-pod-takes-the-chart"),
        pytest.param({}, "serviceAccountName", "ml-default", id="empty-spec-pod-takes-the-chart"),
        pytest.param(
            {"nodeSelector": {"pool": "gpu"}},
            "nodeSelector",
            {"pool": "gpu", "kubernetes.io/arch": "amd64"},
            id="node-selector-maps-merge-object-wins",
        ),
        pytest.param(
            {"tolerations": [{"key": "gpu", "operator": "Exists"}]},
            "tolerations",
            [
                {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"},
                {"key": "gpu", "operator": "Exists"},
            ],
            id="tolerations-append",
        ),
        pytest.param(
            {"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}]},
            "tolerations",
            [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
            id="tolerations-duplicates-dropped",
        ),
        pytest.param(
            {
                "affinity": {
                    "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": "h"}]}
                }
            },
            "affinity",
            {
                "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{"topologyKey": "h"}]},
                "nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "preference": {}}]},
            },
            id="affinity-kinds-replace-one-by-one",
        ),
        pytest.param({"priorityClassName": "ml-urgent"}, "priorityClassName", "ml-urgent", id="priority-object-wins"),
        pytest.param({"serviceAccountName": "team"}, "serviceAccountName", "team", id="service-account-object-wins"),
        pytest.param(
            {"imagePullSecrets": [{"name": "team-registry"}, {"name": "platform-registry"}]},
            "imagePullSecrets",
            [{"name": "platform-registry"}, {"name": "team-registry"}],
            id="pull-secrets-union-by-name",
        ),
        pytest.param(
            {"env": [{"name": "OMP_NUM_THREADS", "value": "8"}]},
            "env",
            [{"name": "OMP_NUM_THREADS", "value": "8"}, {"name": "TZ", "value": "UTC"}],
            id="env-by-name-object-wins",
        ),
        pytest.param(
            {
                "volumes": [{"name": "ca", "secret": {"secretName": "team-ca"}}],
                "volumeMounts": [{"name": "ca", "mountPath": "/mnt/ca", "readOnly": True}],
            },
            "volumes",
            [{"name": "ca", "secret": {"secretName": "team-ca"}}],
            id="volumes-by-name-object-wins",
        ),
        pytest.param(
            {
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "d"}}],
                "volumeMounts": [{"name": "data", "mountPath": "/mnt/data"}],
            },
            "volumeMounts",
            [{"name": "ca", "mountPath": "/mnt/ca"}, {"name": "data", "mountPath": "/mnt/data"}],
            id="mounts-by-path-both-kept",
        ),
    ],
)
def test_merge_with_the_chart_defaults(own: dict[str, Any] | None, field: str, expected: object) -> None:
    assert _merged(own)[field] == expected


def test_chart_defaults_reach_the_pods_under_the_objects_own() -> None:
    pods = _pods({"nodeSelector": {"pool": "gpu"}, "priorityClassName": "ml-urgent"}, CHART)
    for kind, pod in pods.items():
        assert pod["nodeSelector"] == {"kubernetes.io/arch": "amd64", "pool": "gpu"}, kind
        assert (pod["priorityClassName"], pod["serviceAccountName"]) == ("ml-urgent", "ml-default"), kind
        assert pod["imagePullSecrets"] == [{"name": "platform-registry"}], kind
    assert _pods(None, CHART)["check"]["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
    ]


@pytest.mark.parametrize(
    ("pod", "message"),
    [
        pytest.param({"env": [{"name": "MLOPS_TRACK", "value": "x"}]}, "set by the operator", id="mlops-prefix"),
        pytest.param({"env": [{"name": "HOME", "value": "/"}]}, "set by the operator", id="home"),
        pytest.param({"env": [{"name": "PYTHONPATH", "value": "/mnt/x"}]}, "changes how its code loads", id="python"),
        pytest.param({"env": [{"name": "LD_PRELOAD", "value": "/mnt/x.so"}]}, "changes how its code loads", id="ld"),
        pytest.param({"volumes": [{"name": "h", "hostPath": {"path": "/"}}]}, "hostPath", id="host-path"),
        pytest.param({"volumes": [{"name": "e"}]}, "exactly one of", id="volume-without-type"),
        pytest.param({"volumes": [{"name": "tmp", "emptyDir": {}}]}, "operator's (/tmp)", id="tmp-volume"),
        pytest.param(
            {"volumes": [{"name": "c", "emptyDir": {}}], "volumeMounts": [{"name": "c", "mountPath": "/usr/lib"}]},
            "under /mnt/",
            id="mount-outside-mnt",
        ),
        pytest.param(
            {"volumes": [{"name": "c", "emptyDir": {}}], "volumeMounts": [{"name": "c", "mountPath": "/mnt/../etc"}]},
            "under /mnt/",
            id="mount-dot-dot",
        ),
        pytest.param({"volumeMounts": [{"name": "x", "mountPath": "/mnt/x"}]}, "not in this pod", id="mount-no-volume"),
        pytest.param({"priorityClassName": "system-node-critical"}, "system- priority", id="system-priority"),
        pytest.param({"securityContext": {"privileged": True}}, "Extra inputs", id="security-context"),
        pytest.param({"hostNetwork": True}, "Extra inputs", id="host-network"),
        pytest.param(
            {"volumes": [{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}]},
            "Extra inputs",
            id="projected-token",
        ),
    ],
)
def test_unsafe_or_inconsistent_pod_blocks_are_refused(pod: dict[str, Any], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        PodOverrides.model_validate(pod)


def test_spec_pod_is_accepted_by_all_three_kinds() -> None:
    assert DatasetSpec.model_validate(_dataset(POD)["spec"]).pod is not None
    assert TrainingRunSpec.model_validate(_trainingrun(POD)["spec"]).pod is not None
    assert DeploymentSpec.model_validate(_deployment(POD)["spec"]).pod is not None


def test_the_chart_value_is_read_with_the_same_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_WORKLOAD_POD", '{"nodeSelector": {"pool": "ml"}, "priorityClassName": "ml"}')
    settings = Settings.from_env()
    assert settings.worker.pod_defaults == settings.workload_pod
    assert settings.workload_pod is not None and settings.workload_pod.node_selector == {"pool": "ml"}
    monkeypatch.setenv("MLOPS_WORKLOAD_POD", "{}")
    assert Settings.from_env().workload_pod is None
    monkeypatch.setenv("MLOPS_WORKLOAD_POD", '{"env": [{"name": "MLOPS_OBJECT", "value": "{}"}]}')
    with pytest.raises(ValueError, match=r"workloadPod.*env\.0"):
        Settings.from_env()


def test_pods_the_api_server_refuses_make_the_deployment_degraded_with_its_message() -> None:
    refused = 'pods "iris-stable-x" is forbidden: no PriorityClass with name ml-urgent was found'
    stable = track(0, 2, version=1)
    stable["status"]["conditions"] = [
        {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": refused}
    ]
    body = _deployment({"priorityClassName": "ml-urgent"})
    body["status"] = {"stableVersion": 1}
    plan = plan_deployment(observe(body, holder=1, stable=stable), NOW)
    degraded = next(c for c in plan.status["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "PodsNotCreated")
    assert degraded["message"] == f"stable track: {refused}"
    assert [(e.reason, e.type) for e in plan.events if e.reason == "PodsNotCreated"] == [("PodsNotCreated", "Warning")]
    stable["status"]["conditions"][0]["status"] = "False"  # the PriorityClass was created: pods are made
    plan = plan_deployment(observe(body, holder=1, stable=stable), NOW)
    assert next(c for c in plan.status["conditions"] if c["type"] == "Degraded")["status"] == "False"


def test_a_dataset_check_waits_for_what_its_pods_name_and_a_ready_version_stays_usable() -> None:
    missing = ("priorityClassName: no PriorityClass ml-batch",)
    body = _dataset({"priorityClassName": "ml-batch"})
    plan = plan_dataset(replace(observe_dataset(body, wanted(body, NOW)), missing_pod_refs=missing), NOW)
    assert not plan.creates_after_status and plan.requeue_after == 30
    ready = next(c for c in plan.status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "PodRefsMissing") and missing[0] in ready["message"]
    assert [(e.reason, e.type) for e in plan.events] == [("PodRefsMissing", "Warning")]
    # A refresh of a Ready version that cannot start: the version checked before stays Ready.
    body["status"] = {
        "phase": "Ready",
        "version": "sha256:abc",
        "observedGeneration": 1,
        "checkedJob": "iris-check-g1-0",
        "jobName": "iris-check-g1-0",
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Validated",
                "message": "validated",
                "lastTransitionTime": "t",
            }
        ],
    }
    observed = replace(observe_dataset(body, "iris-check-g1-1"), missing_pod_refs=missing)
    plan = plan_dataset(observed, NOW)
    assert not plan.creates_after_status and plan.status["phase"] == "Ready"
    assert missing[0] in plan.status["message"]
    assert next(c for c in plan.status["conditions"] if c["type"] == "Ready")["status"] == "True"


def test_the_worker_gets_the_spec_without_the_pod_block() -> None:
    """Placement is the kubelet's; a worker image older than the operator still parses what it is given."""
    pods = _pods(POD)
    for kind in ("check", "train"):
        env = {e["name"]: e.get("value") for e in pods[kind]["containers"][0]["env"]}
        spec = json.loads(env["MLOPS_OBJECT"])["spec"]
        assert "pod" not in spec and spec, kind
