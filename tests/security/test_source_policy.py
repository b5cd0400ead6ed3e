"""Dataset sources under the chart's default source policy, on the real cluster: a file:// source, a
metadata address and a loopback host are refused before anything is read, and the Dataset says which
rule refused it without copying anything of the target into status."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.fixtures.cluster import Kube, OperatorProcess, wait_for
from tests.integration.test_training import iris_dataset

CHART_VALUES = Path(__file__).resolve().parents[2] / "charts" / "mlops-operator" / "values.yaml"


def chart_policy() -> str:
    """The chart's default sourcePolicy, as its template hands it to the operator (toJson)."""
    return json.dumps(yaml.safe_load(CHART_VALUES.read_text())["sourcePolicy"], separators=(",", ":"))


def status_of(kube: Kube, name: str, namespace: str) -> dict[str, Any]:
    return kube.json("get", f"datasets.mlops.dev/{name}", "-n", namespace).get("status") or {}


def test_the_default_policy_refuses_files_metadata_and_loopback_sources_with_the_rule(
    crds_installed: Kube, namespace: str, tmp_path: Path
) -> None:
    kube = crds_installed
    secret = tmp_path / "secret.csv"
    secret.write_text("sepal_length,species\n1.0,the-secret-content\n")
    sources = {
        "local-file": (f"file://{secret}", "scheme 'file' is not allowed"),
        "metadata": ("http://169.254.169.254/latest/meta-data/iam.csv", "inside denied network 169.254.0.0/16"),
        "loopback": ("http://127.0.0.1:1/data.csv", "inside denied network 127.0.0.0/8"),
    }
    env = {"MLOPS_SOURCE_POLICY": chart_policy()}
    op = OperatorProcess(kube, namespace, tmp_path / "operator.log", extra_env=env).start()
    try:
        kube.apply("---\n".join(iris_dataset(uri, name=name) for name, (uri, _) in sources.items()), namespace)
        for name, (_, rule) in sources.items():
            status = wait_for(
                f"Dataset {name} Invalid",
                lambda n=name: (s := status_of(kube, n, namespace)).get("phase") == "Invalid" and s,
                timeout=120,
            )
            assert "refused by the cluster's source policy" in status["message"] and rule in status["message"], status
            assert "the-secret-content" not in json.dumps(status)
        jobs = kube.json("get", "jobs", "-n", namespace)["items"]
        env_of_jobs = [
            {e["name"]: e.get("value") for e in j["spec"]["template"]["spec"]["containers"][0]["env"]} for j in jobs
        ]
        assert env_of_jobs and all(e.get("MLOPS_SOURCE_POLICY") == chart_policy() for e in env_of_jobs)
    except (AssertionError, subprocess.SubprocessError):
        print(kube.run("get", "mlops,jobs,pods,events", "-n", namespace, check=False).stdout)
        print(op.log_tail(80))
        raise
    finally:
        op.stop()
