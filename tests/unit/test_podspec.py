"""What the node agent runs and reports, computed from plain Pod dicts."""

from __future__ import annotations

import base64

import pytest
from mlops_operator.localcluster.podspec import (
    ContainerConfigError,
    ContainerState,
    container_argv,
    expand,
    pod_phase,
    pod_status,
    resolve_env,
    termination_message_from_log,
)

POD = {
    "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "labels": {"app": "web"}},
    "spec": {"nodeName": "n1", "serviceAccountName": "default", "restartPolicy": "Never"},
    "status": {"podIP": "10.244.0.9", "hostIP": "10.244.0.1"},
}
CONFIG_MAPS = {("ns", "cfg"): {"data": {"MODE": "fast", "LEVEL": "3"}}}
SECRETS = {("ns", "sec"): {"data": {"TOKEN": base64.b64encode(b"s3cret").decode()}}}


def _env(container: dict) -> dict[str, str]:
    return resolve_env(
        POD,
        container,
        config_maps=lambda ns, n: CONFIG_MAPS.get((ns, n)),
        secrets=lambda ns, n: SECRETS.get((ns, n)),
        base_env={"BASE": "1"},
    )


def test_env_sources_in_kubelet_order() -> None:
    env = _env(
        {
            "name": "c",
            "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}, {"secretRef": {"name": "sec"}}],
            "env": [
                {"name": "MODE", "value": "explicit-$(CFG_MODE)"},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "LVL", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "LEVEL"}}},
                {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "TOKEN"}}},
                {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "missing", "key": "x", "optional": True}}},
            ],
        }
    )
    assert env == {
        "BASE": "1",
        "CFG_MODE": "fast",
        "CFG_LEVEL": "3",
        "TOKEN": "s3cret",
        "MODE": "explicit-fast",
        "POD": "p",
        "APP": "web",
        "IP": "10.244.0.9",
        "LVL": "3",
        "PW": "s3cret",
    }


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}], 'configmap "nope" not found'),
        ([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}], "couldn't find key k"),
        ([{"name": "X", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}], 'secret "nope" not found'),
    ],
)
def test_missing_references_are_config_errors(env: list, message: str) -> None:
    with pytest.raises(ContainerConfigError, match=message):
        _env({"name": "c", "env": env})


def test_expand_rules() -> None:
    assert expand("$(A)-$(B)-$$(A)", {"A": "1"}) == "1-$(B)-$(A)"


def test_argv_uses_command_args_and_expansion() -> None:
    argv = container_argv({"name": "c", "command": ["python", "-c"], "args": ["print('$(X)')"]}, {"X": "hi"}, {})
    assert argv == ["python", "-c", "print('hi')"]


def test_argv_without_command_uses_known_image_entrypoint() -> None:
    known = {"mlops-operator/trainer": ["mlops-worker"]}
    argv = container_argv({"name": "c", "image": "mlops-operator/trainer:0.1.0", "args": ["train"]}, {}, known)
    assert argv == ["mlops-worker", "train"]
    with pytest.raises(ContainerConfigError, match="no known entrypoint"):
        container_argv({"name": "c", "image": "busybox"}, {}, known)


def _state(state: str, exit_code: int | None = None, restarts: int = 0) -> ContainerState:
    return ContainerState(name="c", image="i", state=state, exit_code=exit_code, restart_count=restarts)


@pytest.mark.parametrize(
    ("states", "policy", "phase"),
    [
        ([_state("waiting")], "Never", "Pending"),
        ([_state("running")], "Never", "Running"),
        ([_state("terminated", 0)], "Never", "Succeeded"),
        ([_state("terminated", 2)], "Never", "Failed"),
        ([_state("terminated", 2)], "OnFailure", "Running"),
        ([_state("terminated", 0)], "OnFailure", "Succeeded"),
        ([_state("terminated", 0)], "Always", "Running"),
        ([_state("terminated", 0), _state("running")], "Never", "Running"),
        ([_state("terminated", 0), _state("terminated", 1)], "Never", "Failed"),
    ],
)
def test_pod_phase(states: list[ContainerState], policy: str, phase: str) -> None:
    assert pod_phase(states, policy) == phase


def test_pod_status_ready_and_terminal() -> None:
    running = _state("running")
    running.ready, running.started_at = True, "T0"
    status = pod_status(POD, [running], pod_ip="10.244.0.9", host_ip="10.244.0.1", started="T0", now="T1")
    conds = {c["type"]: c["status"] for c in status["conditions"]}
    assert status["phase"] == "Running" and conds["Ready"] == "True" and status["podIP"] == "10.244.0.9"
    done = _state("terminated", 3)
    done.reason = "Error"
    status = pod_status(
        {**POD, "status": status}, [done], pod_ip="10.244.0.9", host_ip="10.244.0.1", started="T0", now="T2"
    )
    conds = {c["type"]: c for c in status["conditions"]}
    assert status["phase"] == "Failed" and conds["Ready"]["status"] == "False"
    assert conds["Ready"]["lastTransitionTime"] == "T2" and conds["PodScheduled"]["lastTransitionTime"] == "T1"
    assert status["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3


def test_address_pool_reuses_and_persists(tmp_path) -> None:
    from mlops_operator.localcluster.network import AddressPool

    state = tmp_path / "ips.json"
    pool = AddressPool("10.244.0.0/29", state)
    first, second = pool.acquire("a"), pool.acquire("b")
    assert (first, second) == ("10.244.0.2", "10.244.0.3")
    assert pool.acquire("a") == first
    pool.release("a")
    assert AddressPool("10.244.0.0/29", state).acquire("c") == "10.244.0.2"


def test_probe_tracker_thresholds() -> None:
    from mlops_operator.localcluster.probes import ProbeTracker

    tracker = ProbeTracker({"initialDelaySeconds": 5, "periodSeconds": 1, "failureThreshold": 2}, started_at=0.0)
    assert not tracker.due(4.9) and tracker.due(5.0)
    tracker.record(True, 5.0)
    assert tracker.passing and not tracker.due(5.5) and tracker.due(6.0)
    tracker.record(False, 6.0)
    assert tracker.passing and not tracker.failed
    tracker.record(False, 7.0)
    assert not tracker.passing and tracker.failed


def test_termination_message_is_the_log_tail() -> None:
    log = "".join(f"line {i}\n" for i in range(200)).encode() + b"error: column 'species' not found\n"
    message = termination_message_from_log(log)
    assert message.endswith("error: column 'species' not found")
    assert message.count("\n") == 79 and len(message.encode()) <= 2048
    long_line = termination_message_from_log(b"x" * 5000)
    assert long_line == "x" * 2048
