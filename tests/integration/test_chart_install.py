"""The Helm chart's RBAC on the real cluster: enough to run the iris pipeline, and nothing more.

What is installed, and why: `helm install` of the real chart (the real helm binary, the real schema
and templates) with `--skip-crds`. The pipeline test runs the chart's operator Deployment as it is:
the node agent runs its pod from the operator image `make images` built (the chart's default image
name and tag), with the ServiceAccount's token projected by the API-access volume, so the operator
authenticates in-cluster exactly as on a real cluster. The RBAC test installs with `replicas=0` and asks
the API server (`kubectl auth can-i`). Everything else the chart renders is applied as it is: the
ServiceAccount, the ClusterRole/ClusterRoleBinding, the Role and RoleBinding of each watched namespace,
and the metrics Service. The CRDs are the session's (the
chart's copies are byte-identical, see tests/unit/test_chart_sync.py) and are shared with other tests,
so helm leaves them alone. The bundled MLflow is off: the local cluster's MLflow is used.

The operator watches only the test namespace (`watchNamespaces`), so it never touches other
namespaces' objects on the shared cluster. The cluster-wide mode's RBAC is installed in the last test
only to be asked (`kubectl auth can-i`); no process uses it.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlops_operator import __version__
from mlops_operator.localcluster.binaries import ensure_binaries

from .conftest import REPO, Kube, wait_for
from .test_training import get, iris_dataset, mlflow_alias, sample_data, training_run, wait_phase

CHART = REPO / "charts" / "mlops-operator"
PIPELINE_TIMEOUT = 240


@dataclasses.dataclass
class Release:
    name: str
    namespace: str
    kube: Kube
    manifests: list[dict[str, Any]]

    @property
    def service_account(self) -> str:
        return next(m["metadata"]["name"] for m in self.manifests if m["kind"] == "ServiceAccount")

    @property
    def lease_env(self) -> dict[str, str]:
        """The chart's leader-election settings, as its pod would get them (downward API: the release namespace)."""
        operator = next(m for m in self.manifests if m["kind"] == "Deployment")
        env = {e["name"]: e.get("value") for e in operator["spec"]["template"]["spec"]["containers"][0]["env"]}
        settings = {k: str(v) for k, v in env.items() if k.startswith("MLOPS_LEADER") and v is not None}
        return {**settings, "MLOPS_LEADER_LEASE_NAMESPACE": self.namespace}

    @property
    def lease_name(self) -> str:
        return self.lease_env["MLOPS_LEADER_LEASE_NAME"]

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    def can_i(self, *args: str) -> bool:
        result = self.kube.run("auth", "can-i", "--as", self.user, *args, check=False)
        answer = result.stdout.strip()
        assert answer in ("yes", "no"), f"kubectl auth can-i {' '.join(args)}: {result.stdout}{result.stderr}"
        return answer == "yes"


def helm(kube: Kube, *args: str) -> str:
    env = {**os.environ, "KUBECONFIG": str(kube.kubeconfig)}
    result = subprocess.run(
        [str(ensure_binaries() / "helm"), *args], capture_output=True, text=True, env=env, timeout=180, check=False
    )
    assert result.returncode == 0, f"helm {' '.join(args)} failed:\n{result.stdout}{result.stderr}"
    return result.stdout


@pytest.fixture
def install(crds_installed: Kube) -> Iterator[Any]:
    """Returns install(namespace, *set_args) -> Release; uninstalls every release afterwards."""
    kube, releases = crds_installed, []

    def _install(namespace: str, *values: str) -> Release:
        name = f"mlops-{uuid.uuid4().hex[:6]}"
        args = ["--namespace", namespace, "--set", "replicas=0", "--set", "mlflow.enabled=false"]
        args += ["--set", f"mlflow.trackingUri={kube.mlflow_url}"]
        for value in values:
            args += ["--set", value]
        helm(kube, "install", name, str(CHART), "--skip-crds", *args)
        releases.append((name, namespace))
        manifest = helm(kube, "get", "manifest", name, "--namespace", namespace)
        return Release(name, namespace, kube, [m for m in yaml.safe_load_all(manifest) if m])

    def _uninstall(release: Release) -> None:
        releases.remove((release.name, release.namespace))
        helm(kube, "uninstall", release.name, "--namespace", release.namespace, "--wait", "--timeout", "60s")

    _install.uninstall = _uninstall  # type: ignore[attr-defined]
    yield _install
    for name, namespace in releases:  # cluster-scoped objects go with the release, not with the namespace
        helm(kube, "uninstall", name, "--namespace", namespace, "--wait", "--timeout", "60s")


@dataclasses.dataclass
class InClusterOperator:
    """The chart's operator pod, run by the node agent from the operator image: what wait_phase asks of an
    operator (running? its log) answered from the pod's status and its log file on the node."""

    kube: Kube
    namespace: str
    release: str

    def pod(self) -> dict[str, Any] | None:
        selector = f"app.kubernetes.io/instance={self.release}"
        pods = self.kube.json("get", "pods", "-n", self.namespace, "-l", selector)["items"]
        return pods[0] if pods else None

    def running(self) -> bool:
        pod = self.pod()
        statuses = (pod or {}).get("status", {}).get("containerStatuses") or []
        return bool(statuses) and "running" in statuses[0]["state"] and statuses[0]["restartCount"] == 0

    def log_file(self, pod: dict[str, Any]) -> Path:
        meta = pod["metadata"]
        assert self.kube.state_dir is not None
        directory = f"{meta['namespace']}_{meta['name']}_{meta['uid'][:8]}"
        return self.kube.state_dir / "logs" / "pods" / directory / "operator.log"

    def log_tail(self, lines: int = 60) -> str:
        pod = self.pod()
        if pod is None or not self.log_file(pod).exists():
            return "(no operator pod log)"
        return "\n".join(self.log_file(pod).read_text(errors="replace").splitlines()[-lines:])


def test_chart_installs_the_operator_from_its_image_and_runs_the_iris_pipeline(
    install: Any, namespace: str, tmp_path: Path
) -> None:
    """`helm install` with the chart's default image settings (mlops-operator/operator:<appVersion>, the tag
    `make images` builds): the node agent runs the operator pod from the image, with the chart's
    ServiceAccount token projected in, and the operator runs the iris pipeline on the chart's RBAC."""
    # file:// is off by default; on this node the data dir is the data meant to share (docs/images.md).
    schemes = "sourcePolicy.allowedSchemes={file,https,http,s3,gs,runs}"
    release: Release = install(namespace, f"watchNamespaces={{{namespace}}}", "replicas=1", schemes)
    kube = release.kube
    kinds = sorted(m["kind"] for m in release.manifests)
    assert kinds == sorted(
        [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Role",  # leader election's, in the release namespace
            "RoleBinding",
            "Service",
            "Deployment",
            "NetworkPolicy",  # the model servers' in the watched namespace (the bundled MLflow is off)
        ]
    ), kinds
    # The API server took the policy as rendered (this cluster's network does not enforce it).
    (policy,) = kube.json("get", "networkpolicies", "-n", namespace)["items"]
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "mlops-server"
    assert policy["spec"]["ingress"][0]["from"][0] == {"podSelector": {}}
    deployment = next(m for m in release.manifests if m["kind"] == "Deployment")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"mlops-operator/operator:{__version__}", "the chart's default image"
    op = InClusterOperator(kube, namespace, release.name)
    kube.run("rollout", "status", f"deployment/{deployment['metadata']['name']}", "-n", namespace, "--timeout=120s")
    pod = op.pod()
    assert pod is not None
    agent_log = (kube.state_dir or Path()) / "logs" / "node-agent.log"
    assert f"pod {namespace}/{pod['metadata']['name']}: started container operator from image" in agent_log.read_text()
    try:
        model = f"iris-{namespace}"
        iris_csv = sample_data("iris", tmp_path / "iris.csv")
        kube.apply(iris_dataset(f"file://{iris_csv}") + "---\n" + training_run("iris-train", model), namespace)
        wait_phase(kube, "datasets.mlops.dev/iris", namespace, {"Ready", "Invalid"}, op, PIPELINE_TIMEOUT)
        assert get(kube, "datasets.mlops.dev/iris", namespace)["status"]["phase"] == "Ready"
        final = wait_phase(kube, "trainingrun/iris-train", namespace, {"Succeeded", "Failed"}, op, PIPELINE_TIMEOUT)
        run = get(kube, "trainingrun/iris-train", namespace)
        assert final == "Succeeded", run["status"]
        mv_name = run["status"]["modelVersion"]
        wait_phase(kube, f"modelversion/{mv_name}", namespace, {"Promoted", "Rejected"}, op, 60)
        mv = get(kube, f"modelversion/{mv_name}", namespace)
        assert mv["status"]["phase"] == "Promoted", mv["status"]
        assert mlflow_alias(kube, model) == mv["spec"]["version"]

        # Events are a courtesy the operator never fails over: a missing permission would only be a warning.
        def operator_events() -> list[dict[str, Any]]:
            items = kube.json("get", "events", "-n", namespace)["items"]
            return [e for e in items if (e.get("source") or {}).get("component") == "mlops-operator"]

        events = wait_for("events posted by the operator", operator_events, timeout=30)
        assert {e["involvedObject"]["kind"] for e in events} >= {"Dataset", "TrainingRun", "ModelVersion"}
    finally:
        print(f"--- operator pod log (tail) ---\n{op.log_tail()}")
    log_file = op.log_file(pod)
    # Scaled to zero: the pod gets SIGTERM and the operator hands its Lease back before it exits.
    kube.run("scale", f"deployment/{deployment['metadata']['name']}", "-n", namespace, "--replicas=0")
    wait_for("the operator pod to go", lambda: op.pod() is None, timeout=60)
    log = log_file.read_text(errors="replace")
    denied = [line for line in log.splitlines() if " 403 " in line or "forbidden" in line.lower()]
    assert not denied, "the operator was denied something:\n" + "\n".join(denied[:20])
    assert "Not enough permissions" not in log, log
    assert "leading now" in log and "released the leader Lease" in log, "leader election ran on the chart's RBAC"


# Rules a least-privilege operator must never hold.
DANGEROUS_VERBS = {"*", "escalate", "bind", "impersonate", "delete", "deletecollection", "update"}
# The one exception, reasoned in the chart (_helpers.tpl): removing spec.autoscaling must remove the HPA,
# which has no "off" setting to patch instead; only an HPA the Deployment controls, uid as precondition.
ALLOWED_DANGEROUS = {("autoscaling", "horizontalpodautoscalers"): {"delete"}}
SENSITIVE_RESOURCES = {
    "*",
    "secrets",
    "pods/exec",
    "pods/attach",
    "pods/portforward",
    "nodes/proxy",
    "serviceaccounts/token",
}


def assert_rules_are_minimal(role: dict[str, Any]) -> None:
    for rule in role["rules"]:
        where = f"{role['kind']} {role['metadata']['name']}: {rule}"
        assert rule.get("apiGroups") and "*" not in rule["apiGroups"], where
        # An exception holds only for a rule naming nothing but the excepted resource.
        pairs = [(group, resource) for group in rule["apiGroups"] for resource in rule["resources"]]
        allowed = set.intersection(*(ALLOWED_DANGEROUS.get(pair, set()) for pair in pairs)) if pairs else set()
        assert not set(rule["verbs"]) & (DANGEROUS_VERBS - allowed), where
        assert not set(rule["resources"]) & SENSITIVE_RESOURCES, where
        assert not rule.get("nonResourceURLs"), where
        assert not rule.get("resourceNames") or rule["verbs"] != ["*"], where


def test_chart_rbac_grants_nothing_more(install: Any, namespace: str, crds_installed: Kube) -> None:
    kube = crds_installed
    scoped = install(namespace, f"watchNamespaces={{{namespace}}}")
    roles = [m for m in scoped.manifests if m["kind"] in ("ClusterRole", "Role")]
    assert roles
    for role in roles:
        assert_rules_are_minimal(role)

    # What the namespaced install allows in its namespace, and only there.
    assert scoped.can_i("list", "trainingruns.mlops.dev", "-n", namespace)
    assert scoped.can_i("patch", "trainingruns.mlops.dev", "--subresource=status", "-n", namespace)
    assert scoped.can_i("create", "jobs.batch", "-n", namespace)
    assert scoped.can_i("patch", "jobs.batch", "-n", namespace)  # a finished training Job's TTL
    assert scoped.can_i("list", "customresourcedefinitions.apiextensions.k8s.io")
    # The one delete: an HPA left behind when spec.autoscaling is removed (reason in the chart's RBAC).
    assert scoped.can_i("delete", "horizontalpodautoscalers.autoscaling", "-n", namespace)
    # spec.pod: whether the ServiceAccount and PriorityClass a Job's pods name exist (controllers/podrefs.py).
    assert scoped.can_i("get", "serviceaccounts", "-n", namespace)
    assert scoped.can_i("get", "priorityclasses.scheduling.k8s.io")
    # Leader election: create a Lease, get and patch only the release's own.
    lease = f"leases.coordination.k8s.io/{scoped.lease_name}"
    assert scoped.can_i("create", "leases.coordination.k8s.io", "-n", namespace)
    assert scoped.can_i("get", lease, "-n", namespace)
    assert scoped.can_i("patch", lease, "-n", namespace)
    for denied in (
        ["list", "trainingruns.mlops.dev", "-n", "default"],
        ["list", "trainingruns.mlops.dev", "--all-namespaces"],
        ["create", "jobs.batch", "-n", "default"],
        ["get", "secrets", "-n", namespace],
        ["list", "secrets", "--all-namespaces"],
        ["patch", "trainingruns.mlops.dev", "-n", namespace],  # spec is the user's; only status is written
        ["update", "trainingruns.mlops.dev", "-n", namespace],
        ["delete", "trainingruns.mlops.dev", "-n", namespace],
        ["delete", "jobs.batch", "-n", namespace],
        ["delete", "deployments.apps", "-n", namespace],
        ["delete", "services", "-n", namespace],
        ["delete", "poddisruptionbudgets.policy", "-n", namespace],
        ["delete", "horizontalpodautoscalers.autoscaling", "-n", "default"],
        ["create", "pods", "-n", namespace],
        ["create", "pods/exec", "-n", namespace],
        ["get", "serviceaccounts", "-n", "default"],
        ["list", "serviceaccounts", "-n", namespace],
        ["create", "serviceaccounts/token", "-n", namespace],
        ["create", "priorityclasses.scheduling.k8s.io"],
        ["delete", "namespaces"],
        ["create", "customresourcedefinitions.apiextensions.k8s.io"],
        ["get", "leases.coordination.k8s.io/someone-elses", "-n", namespace],
        ["patch", "leases.coordination.k8s.io/someone-elses", "-n", namespace],
        ["update", lease, "-n", namespace],
        ["delete", lease, "-n", namespace],
        ["list", "leases.coordination.k8s.io", "-n", namespace],
        ["watch", "leases.coordination.k8s.io", "-n", namespace],
        ["create", "leases.coordination.k8s.io", "-n", "default"],
        ["patch", lease, "-n", "kube-node-lease"],
    ):
        assert not scoped.can_i(*denied), f"the namespaced chart RBAC allows {' '.join(denied)}"

    # The cluster-wide mode: its ClusterRole in a second namespace, asked and never used.
    other = f"t-{uuid.uuid4().hex[:8]}"
    kube.run("create", "namespace", other)
    try:
        wide = install(other)
        cluster_roles = [m for m in wide.manifests if m["kind"] == "ClusterRole"]
        roles = [m for m in wide.manifests if m["kind"] == "Role"]
        assert len(cluster_roles) == 1 and [r["metadata"]["namespace"] for r in roles] == [other], roles
        assert_rules_are_minimal(cluster_roles[0])
        assert wide.can_i("list", "trainingruns.mlops.dev", "--all-namespaces")
        assert wide.can_i("create", "modelversions.mlops.dev", "-n", "default")
        assert wide.can_i("patch", "deployments.apps", "-n", namespace)
        assert wide.can_i("patch", f"leases.coordination.k8s.io/{wide.lease_name}", "-n", other)
        for denied in (
            ["get", "secrets", "-n", other],
            ["get", "secrets", "--all-namespaces"],
            ["delete", "namespaces"],
            ["list", "namespaces"],  # kopf does not look at namespaces when it runs cluster-wide
            ["create", "clusterrolebindings.rbac.authorization.k8s.io"],
            ["create", "rolebindings.rbac.authorization.k8s.io", "-n", other],
            ["escalate", "clusterroles.rbac.authorization.k8s.io"],
            ["bind", "clusterroles.rbac.authorization.k8s.io"],
            ["impersonate", "users"],
            ["impersonate", "serviceaccounts", "-n", other],
            ["create", "serviceaccounts/token", "-n", other],
            ["delete", "deployments.apps", "-n", other],
            ["get", "nodes"],
            ["update", "customresourcedefinitions.apiextensions.k8s.io"],
            ["create", "leases.coordination.k8s.io", "-n", namespace],  # the Lease is in the release namespace only
            ["patch", f"leases.coordination.k8s.io/{wide.lease_name}", "-n", "kube-system"],
        ):
            assert not wide.can_i(*denied), f"the cluster-wide chart RBAC allows {' '.join(denied)}"
        install.uninstall(wide)  # before its namespace (and helm's release record in it) goes
        assert kube.run("get", "clusterrole", cluster_roles[0]["metadata"]["name"], check=False).returncode != 0
    finally:
        kube.run("delete", "namespace", other, "--wait=false", check=False)


def test_the_bundled_mlflows_network_policy_is_accepted_by_the_api_server(crds_installed: Kube, namespace: str) -> None:
    """Both policies as `helm template` renders them with the bundled MLflow, applied to the real API server."""
    kube = crds_installed
    rendered = helm(
        kube, "template", "np", str(CHART), "--namespace", namespace, "--set", f"watchNamespaces={{{namespace}}}"
    )
    policies = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "NetworkPolicy"]
    assert len(policies) == 2
    kube.apply(yaml.safe_dump_all(policies), namespace)
    stored = {p["metadata"]["name"]: p["spec"] for p in kube.json("get", "networkpolicies", "-n", namespace)["items"]}
    assert set(stored) == {"np-mlops-operator-mlflow", "np-mlops-operator-model-servers"}
    peers = stored["np-mlops-operator-mlflow"]["ingress"][0]["from"]
    assert peers[1]["namespaceSelector"]["matchExpressions"][0]["values"] == [namespace]
    assert peers[1]["podSelector"] == {"matchLabels": {"app.kubernetes.io/managed-by": "mlops-operator"}}
