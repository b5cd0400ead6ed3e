"""`kubectl mlops get / history / why` through the real kubectl, on a namespace with a trained and served model.

The plugin is found the way a user's kubectl finds it: a `kubectl-mlops` executable on PATH (`kubectl plugin
list`): the `kubectl-mlops` console script the package installs into the venv.
"""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import Kube, OperatorProcess, wait_for
from .test_training import iris_dataset, sample_data, training_run, wait_phase

TIMEOUT = 300


def deployment_manifest(model: str) -> str:
    # No analysis metrics: each canary step ends on its pause, so the test needs no traffic.
    return textwrap.dedent(
        f"""
        apiVersion: mlops.dev/v1alpha1
        kind: Deployment
        metadata: {{name: iris}}
        spec:
          model: {{registeredModel: {model}, alias: production}}
          replicas: 1
          strategy:
            canary:
              steps: [{{weight: 50, pause: 5s}}, {{weight: 100}}]
        """
    )


def plugin_dir() -> Path:
    """The directory of the installed `kubectl-mlops` console script (pyproject's entry point, in the venv)."""
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "kubectl-mlops").is_file(), f"no kubectl-mlops in {bin_dir}: reinstall the package (make install)"
    return bin_dir


class Plugin:
    """The real kubectl, with the plugin directory first on PATH."""

    def __init__(self, kube: Kube, bin_dir: Path) -> None:
        self.kube, self.bin_dir = kube, bin_dir

    def env(self, **extra: str) -> dict[str, str]:
        env = {**os.environ, "KUBECONFIG": str(self.kube.kubeconfig), **extra}
        # The plugin's directory once, first: a second kubectl-mlops on PATH would make `kubectl plugin list` warn.
        rest = [d for d in env.get("PATH", "").split(os.pathsep) if d and Path(d).resolve() != self.bin_dir.resolve()]
        env["PATH"] = os.pathsep.join([str(self.bin_dir), *rest])
        return env

    def run(self, *args: str, **env: str) -> str:
        result = subprocess.run(
            [str(self.kube.kubectl_path), *args], capture_output=True, text=True, env=self.env(**env), timeout=60
        )
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stdout}{result.stderr}"
        return result.stdout


def on_a_tty(plugin: Plugin, *args: str, **env: str) -> str:
    """What the plugin writes when its stdout is a terminal (a pseudo-terminal here)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [str(plugin.kube.kubectl_path), *args], stdin=follower, stdout=follower, stderr=follower, env=plugin.env(**env)
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the plugin exited and closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=60) == 0
    os.close(leader)
    return b"".join(chunks).decode()


def deployment_status(kube: Kube, namespace: str) -> dict[str, Any]:
    return kube.json("get", "mldeploy/iris", "-n", namespace).get("status", {})


def walk(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(n for child in node["children"] for n in walk(child))]


@pytest.fixture
def served_namespace(
    crds_installed: Kube, namespace: str, operator_process: OperatorProcess, tmp_path: Path
) -> tuple[str, str]:
    """A namespace where iris-train made v1, the Deployment served it, and iris-train-2's v2 went through the canary."""
    kube, model = crds_installed, f"iris-{namespace}"
    data = sample_data("iris", tmp_path / "iris.csv")
    manifests = [iris_dataset(f"file://{data}"), training_run("iris-train", model), deployment_manifest(model)]
    kube.apply("---\n".join(manifests), namespace)
    wait_phase(kube, "trainingrun/iris-train", namespace, {"Succeeded"}, operator_process, TIMEOUT)
    wait_for("v1 to serve", lambda: deployment_status(kube, namespace).get("stableVersion") == 1, timeout=TIMEOUT)
    second = training_run("iris-train-2", model, params="{n_estimators: 40, max_depth: 5, random_state: 1}")
    kube.apply(second, namespace)
    wait_phase(kube, "trainingrun/iris-train-2", namespace, {"Succeeded"}, operator_process, TIMEOUT)

    def v2_stable() -> bool:
        assert operator_process.running(), operator_process.log_tail()
        status = deployment_status(kube, namespace)
        done = status.get("stableVersion") == 2 and status.get("canaryVersion") is None
        return done and status.get("phase") == "Healthy"

    wait_for("v2 through the canary and Healthy", v2_stable, timeout=TIMEOUT, interval=1)
    return namespace, model


def test_plugin_get_history_why_name_the_real_objects(
    crds_installed: Kube, served_namespace: tuple[str, str], tmp_path: Path
) -> None:
    namespace, model = served_namespace
    plugin = Plugin(crds_installed, plugin_dir())
    listed = plugin.run("plugin", "list")
    assert str(plugin.bin_dir / "kubectl-mlops") in listed, listed

    tree = plugin.run("mlops", "get", "-n", namespace)
    print(f"\n$ kubectl mlops get -n {namespace}\n{tree}")
    assert "\x1b[" not in tree  # a pipe: no colour
    lines = tree.splitlines()
    assert lines[0].startswith("Dataset iris  Ready  version sha256:") and "rows 150" in lines[0]
    assert any(line.startswith("├── TrainingRun iris-train  Succeeded  accuracy ") for line in lines), tree
    assert any("ModelVersion " + f"{model}-1  Superseded  v1" in line for line in lines), tree
    assert any(f"ModelVersion {model}-2  Promoted  v2" in line for line in lines), tree
    assert any("Deployment iris [stable]  Healthy  stable v2" in line for line in lines), tree

    coloured = on_a_tty(plugin, "mlops", "get", "-n", namespace)
    assert "\x1b[32mReady\x1b[0m" in coloured and "\x1b[32mHealthy\x1b[0m" in coloured
    assert "\x1b[" not in on_a_tty(plugin, "mlops", "get", "-n", namespace, NO_COLOR="1")

    document = json.loads(plugin.run("mlops", "get", "-n", namespace, "-o", "json"))
    assert (document["kind"], document["namespace"], document["schemaVersion"]) == ("Lineage", namespace, 1)
    (dataset,) = document["items"]  # everything hangs under the one Dataset
    nodes = {(n["kind"], n["name"]): n for n in walk(dataset)}
    run2 = nodes[("TrainingRun", "iris-train-2")]
    (mv2,) = run2["children"]
    assert mv2["name"] == f"{model}-2" and mv2["facts"]["version"] == 2 and mv2["phase"] == "Promoted"
    (served,) = mv2["children"]
    assert (served["kind"], served["name"], served["role"]) == ("Deployment", "iris", "stable")
    assert served["facts"]["stableVersion"] == 2 and served["facts"]["steps"] == 2
    assert nodes[("ModelVersion", f"{model}-1")]["children"] == []  # no longer served
    real_run = crds_installed.json("get", "trainingrun/iris-train-2", "-n", namespace)
    assert run2["facts"]["metrics"] == real_run["status"]["metrics"]

    # The context's namespace when -n is absent, as kubectl does it.
    config = yaml.safe_load(crds_installed.kubeconfig.read_text())
    for context in config["contexts"]:
        context["context"]["namespace"] = namespace
    scoped = tmp_path / "kubeconfig"
    scoped.write_text(yaml.safe_dump(config))
    assert plugin.run("mlops", "get", "iris-train-2", KUBECONFIG=str(scoped)).startswith("Dataset iris")

    history = plugin.run("mlops", "history", "iris", "-n", namespace)
    print(f"$ kubectl mlops history iris -n {namespace}\n{history}")
    rows = [line.split() for line in history.splitlines() if line.startswith("v")]
    assert [r[0] for r in rows] == ["v1", "v2"] and rows[0][4] == f"{model}-1" and rows[1][2] == "now"
    assert "first version served (alias 'production')" in history and "canary completed" in history
    assert "trained by TrainingRun iris-train-2, applied by hand" in history
    assert "CanaryCompleted" in history and "[Event]" in history  # the Deployment's own Events

    why = plugin.run("mlops", "why", "iris", "-n", namespace)
    print(f"$ kubectl mlops why iris -n {namespace}\n{why}")
    assert "Dataset iris is Ready" in why and "Deployment iris is Healthy" in why  # both kinds named iris
    assert "NewVersion" in why and "Serving" in why
    gates = plugin.run("mlops", "why", f"mv/{model}-2", "-n", namespace)
    assert f"ModelVersion {model}-2 is Promoted" in gates and "gate accuracy" in gates and "✓" in gates
    assert "Ready        True  Promoted" in gates


def test_watch_redraws_on_change_and_stops_on_ctrl_c(crds_installed: Kube, namespace: str, tmp_path: Path) -> None:
    # No operator: a change to any mlops object must redraw, whoever makes it.
    plugin = Plugin(crds_installed, plugin_dir())
    out = tmp_path / "watch.out"
    with out.open("w") as sink:
        proc = subprocess.Popen(
            [str(crds_installed.kubectl_path), "mlops", "get", "-n", namespace, "--watch"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=plugin.env(),
            # As at a terminal: a runner that started the suite with SIGINT ignored must not pass that on.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        wait_for("the first view", lambda: "no mlops.dev objects" in out.read_text(), timeout=30)
        crds_installed.apply(training_run("orphan", "m"), namespace)  # its Dataset does not exist
        wait_for("a redraw", lambda: "TrainingRun orphan" in out.read_text(), timeout=30)
        time.sleep(1)
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            status = Path(f"/proc/{proc.pid}/status").read_text() if proc.poll() is None else ""
            masks = [line for line in status.splitlines() if line.startswith(("State", "SigBlk", "SigIgn", "SigCgt"))]
            raise AssertionError(f"still running 15 s after SIGINT ({masks}); its output:\n{out.read_text()}") from None
        assert code == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    text = out.read_text()
    assert "Traceback" not in text
    assert text.startswith("no mlops.dev objects in namespace") and "Dataset iris  (not found)" in text
    assert text.count("TrainingRun orphan") == 1  # unchanged views are not printed again
