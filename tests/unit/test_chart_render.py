"""The Helm chart rendered by the real helm binary (`helm lint`, `helm template`; no cluster)."""

from __future__ import annotations

import json
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlops_operator.localcluster.binaries import ensure_binaries

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "mlops-operator"
RELEASE, NAMESPACE = "ml", "mlops-system"
KINDS = ["datasets", "trainingruns", "modelversions", "deployments", "notificationpolicies"]


@cache
def helm_binary() -> str:
    return str(ensure_binaries() / "helm")


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm_binary(), *args], capture_output=True, text=True, timeout=60, check=False)


def render(*sets: str, values: dict[str, Any] | None = None, tmp: Path | None = None) -> list[dict[str, Any]]:
    if values is None:
        return _render(sets)
    return _render(sets, values, tmp)


@cache
def _render_text(sets: tuple[str, ...]) -> str:
    result = helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, *[a for s in sets for a in ("--set", s)])
    assert result.returncode == 0, result.stderr
    return result.stdout


def _render(
    sets: tuple[str, ...], values: dict[str, Any] | None = None, tmp: Path | None = None
) -> list[dict[str, Any]]:
    if values is None:  # renders are cached by their --set arguments; parsing gives each caller fresh objects
        return [doc for doc in yaml.safe_load_all(_render_text(sets)) if doc]
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for value in sets:
        args += ["--set", value]
    if values is not None:
        assert tmp is not None
        path = tmp / "values.yaml"
        path.write_text(yaml.safe_dump(values))
        args += ["--values", str(path)]
    result = helm(*args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def rejected(*sets: str) -> str:
    result = helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE, *[a for s in sets for a in ("--set", s)])
    assert result.returncode != 0, f"helm accepted {sets}"
    return result.stderr


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''}: {[d['metadata']['name'] for d in found]}"
    return found[0]


def operator_deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return one(docs, "Deployment", f"{RELEASE}-mlops-operator")


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    containers = operator_deployment(docs)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def env(docs: list[dict[str, Any]]) -> dict[str, str]:
    """name -> value; a downward-API value as `fieldRef:<path>`."""
    return {
        e["name"]: e["value"] if "value" in e else f"fieldRef:{e['valueFrom']['fieldRef']['fieldPath']}"
        for e in container(docs)["env"]
    }


def rules_by_resource(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    """(apiGroup, resource) -> verbs, merged over the role's rules."""
    merged: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert not rule.get("nonResourceURLs") and not rule.get("resourceNames"), rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                merged.setdefault((group, resource), set()).update(rule["verbs"])
    return merged


# What the operator's code does, per (group, resource); see controllers/ and the chart README.
NAMESPACED_RULES: dict[tuple[str, str], set[str]] = {
    **{("mlops.dev", kind): {"get", "list", "watch"} for kind in KINDS},
    ("mlops.dev", "trainingruns"): {"get", "list", "watch", "create"},
    ("mlops.dev", "modelversions"): {"get", "list", "watch", "create"},
    **{("mlops.dev", f"{kind}/status"): {"patch"} for kind in KINDS},
    ("batch", "jobs"): {"get", "list", "watch", "create", "patch"},
    ("", "pods"): {"list"},
    ("apps", "deployments"): {"get", "list", "watch", "create", "patch"},
    ("", "services"): {"get", "list", "watch", "create", "patch"},
    ("", "events"): {"create"},
    ("", "serviceaccounts"): {"get"},  # controllers/podrefs.py
    # planning/scaling.py: the stable track's HPA, deleted when spec.autoscaling is removed
    ("autoscaling", "horizontalpodautoscalers"): {"get", "list", "watch", "create", "patch", "delete"},
    ("policy", "poddisruptionbudgets"): {"get", "list", "watch", "create", "patch"},
}
DISCOVERY_RULES = {
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"},
    ("scheduling.k8s.io", "priorityclasses"): {"get"},  # controllers/podrefs.py (cluster-scoped)
}
LEASE = f"{RELEASE}-mlops-operator-leader"
LEADER_ROLE = f"{RELEASE}-mlops-operator-leader-election"
# What controllers/leader.py does: create the Lease once; get and merge-patch only that one.
LEADER_RULES = [
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
    {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "resourceNames": [LEASE],
        "verbs": ["get", "patch"],
    },
]


def watch_roles(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The Roles (or RoleBindings) of watched namespaces: all but leader election's."""
    return [d for d in docs if d["kind"] == kind and d["metadata"]["name"] != LEADER_ROLE]


def test_helm_lint_is_clean() -> None:
    for sets in ([], ["watchNamespaces={a,b}", "replicas=2"], ["leaderElection.enabled=false"]):
        result = helm(
            "lint", str(CHART), "--strict", "--namespace", NAMESPACE, *[a for s in sets for a in ("--set", s)]
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "0 chart(s) failed" in result.stdout


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["appVersion"] == "0.1.0"
    for part in ("values.schema.json", "README.md", "templates/NOTES.txt", "crds"):
        assert (CHART / part).exists(), part


def test_default_render_objects() -> None:
    docs = render()
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(
        [
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Service",
            "Service",
            "Deployment",
            "Deployment",
            "PersistentVolumeClaim",
            "NetworkPolicy",  # the bundled MLflow's; no serving namespaces are known cluster-wide
        ]
    ), kinds
    for doc in docs:
        if doc["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["metadata"]
        assert doc["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE


def test_operator_pod_is_locked_down() -> None:
    docs = render()
    deployment = operator_deployment(docs)
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == f"{RELEASE}-mlops-operator" and pod["automountServiceAccountToken"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    c = container(docs)
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["runAsNonRoot"] is True
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"]
    assert c["image"] == "mlops-operator/operator:0.1.0"
    assert {v["mountPath"] for v in c["volumeMounts"]} == {"/tmp"}  # writable scratch only


def test_probes_hit_kopfs_health_endpoint() -> None:
    c = container(render())
    args = c["args"]
    liveness = args[args.index("--liveness") + 1]
    assert liveness == "http://0.0.0.0:8080/healthz"
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"health": 8080, "metrics": 9090}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "health"}, probe
    assert args[args.index("--metrics-port") + 1] == "9090"
    assert "run" not in args, "the image's ENTRYPOINT is `mlops-operator run`; args are its flags"
    assert "--peering" not in args and "--namespace" not in args


def test_the_source_policy_reaches_the_operator_and_parses() -> None:
    from mlops_operator.worker.sourcepolicy import ENV_SOURCE_POLICY, policy_from_env

    policy = policy_from_env({ENV_SOURCE_POLICY: env(render())[ENV_SOURCE_POLICY]})
    assert "file" not in (policy.allowed_schemes or []) and policy.same_namespace_runs
    assert "169.254.0.0/16" in policy.denied_networks and "127.0.0.0/8" in policy.denied_networks
    with_file = policy_from_env(
        {ENV_SOURCE_POLICY: env(render("sourcePolicy.allowedSchemes={https,file}"))[ENV_SOURCE_POLICY]}
    )
    assert with_file.allowed_schemes == ["https", "file"]


def test_the_prometheus_policy_reaches_the_operator_and_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_operator.controllers.settings import Settings

    rendered = env(
        render(
            "prometheus.url=http://prom.monitoring:9090",
            "prometheus.allowedUrls={http://team-prom.monitoring:9090/}",
            "prometheus.customQueries=off",
        )
    )
    for key, value in rendered.items():
        if key.startswith(("MLOPS_", "MLFLOW_")) and not value.startswith("fieldRef:"):
            monkeypatch.setenv(key, value)
    settings = Settings.from_env()
    assert settings.custom_queries == "off"
    assert settings.prometheus_for(None) == ("http://prom.monitoring:9090", None)
    # The chart's spelling is what gets queried, whatever the object wrote (a trailing slash, here).
    assert settings.prometheus_for("http://team-prom.monitoring:9090") == ("http://team-prom.monitoring:9090/", None)
    url, refused = settings.prometheus_for("http://user:hunter2@10.0.0.7:8080")
    assert url is None and refused is not None and "prometheus.allowedUrls" in refused
    assert "http://10.0.0.7:8080" in refused and "hunter2" not in refused
    monkeypatch.setenv("MLOPS_PROMETHEUS_ALLOWED_URLS", "not a url")
    with pytest.raises(ValueError, match="must be http"):
        Settings.from_env()
    assert "customQueries" in rejected("prometheus.customQueries=anything")
    assert "allowedUrls" in rejected("prometheus.allowedUrls={ftp://x}")


def test_environment_and_images() -> None:
    docs = render()
    assert {k: v for k, v in env(docs).items() if k != "MLOPS_SOURCE_POLICY"} == {
        "MLFLOW_TRACKING_URI": f"http://{RELEASE}-mlops-operator-mlflow.{NAMESPACE}.svc:5000",
        "MLOPS_WORKER_IMAGE": "mlops-operator/trainer:0.1.0",
        "MLOPS_SERVER_IMAGE": "mlops-operator/server:0.1.0",
        "MLOPS_LEADER_ELECTION": "true",
        "MLOPS_LEADER_IDENTITY": "fieldRef:metadata.name",
        "MLOPS_LEADER_LEASE_NAMESPACE": "fieldRef:metadata.namespace",
        "MLOPS_LEADER_LEASE_NAME": LEASE,
        "MLOPS_LEADER_LEASE_DURATION": "15",
        "MLOPS_LEADER_RENEW_DEADLINE": "10",
        "MLOPS_LEADER_RETRY_PERIOD": "2",
        "MLOPS_CUSTOM_QUERIES": "scoped",
        "MLOPS_WORKLOAD_SECRET": "mlops-credentials",
        "MLOPS_FEEDBACK_SECRET": "mlops-feedback",
        "MLOPS_NOTIFICATION_QUEUE_SIZE": "1000",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    custom = render(
        "image.tag=9.9.9",
        "workerImage.repository=reg.example/trainer",
        "workerImage.tag=1.2.3",
        "prometheus.url=http://prometheus.monitoring:9090",
    )
    assert container(custom)["image"] == "mlops-operator/operator:9.9.9"
    assert env(custom)["MLOPS_WORKER_IMAGE"] == "reg.example/trainer:1.2.3"
    assert env(custom)["MLOPS_SERVER_IMAGE"] == "mlops-operator/server:0.1.0"
    assert env(custom)["MLOPS_PROMETHEUS_URL"] == "http://prometheus.monitoring:9090"


def test_metrics_service_and_optional_servicemonitor() -> None:
    docs = render()
    service = one(docs, "Service", f"{RELEASE}-mlops-operator-metrics")
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}]
    pod_labels = operator_deployment(docs)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert not [d for d in docs if d["kind"] == "ServiceMonitor"]
    monitored = render("metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.labels.release=kps")
    monitor = one(monitored, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]


def test_bundled_mlflow_and_an_existing_one() -> None:
    docs = render()
    name = f"{RELEASE}-mlops-operator-mlflow"
    mlflow = one(docs, "Deployment", name)
    c = mlflow["spec"]["template"]["spec"]["containers"][0]
    command = " ".join(c["command"] + c["args"])
    for part in (
        "mlflow server",
        "--backend-store-uri=sqlite:////data/mlflow.db",
        "--artifacts-destination=/data/artifacts",
        "--serve-artifacts",
        f"{name}.{NAMESPACE}.svc:*",
    ):
        assert part in command, part
    assert mlflow["spec"]["strategy"] == {"type": "Recreate"} and mlflow["spec"]["replicas"] == 1
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    volumes = {v["name"]: v for v in mlflow["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == name
    assert one(docs, "PersistentVolumeClaim", name)["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert one(docs, "Service", name)["spec"]["ports"][0]["port"] == 5000

    existing = render("mlflow.enabled=false", "mlflow.trackingUri=https://mlflow.example.com")
    assert not [d for d in existing if "mlflow" in d["metadata"]["name"]]
    assert env(existing)["MLFLOW_TRACKING_URI"] == "https://mlflow.example.com"


def test_cluster_wide_rbac_is_exactly_what_the_code_uses() -> None:
    docs = render()
    role = one(docs, "ClusterRole")
    assert not watch_roles(docs, "Role") and not watch_roles(docs, "RoleBinding")
    assert rules_by_resource(role) == {**NAMESPACED_RULES, **DISCOVERY_RULES}
    binding = one(docs, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": f"{RELEASE}-mlops-operator", "namespace": NAMESPACE}
    ]
    assert NAMESPACE in role["metadata"]["name"], "cluster-scoped names carry the release namespace"


def test_watch_namespaces_switch_uses_roles() -> None:
    docs = render("watchNamespaces={team-a,team-b}")
    cluster_role = one(docs, "ClusterRole")
    assert rules_by_resource(cluster_role) == {**DISCOVERY_RULES, ("", "namespaces"): {"list", "watch"}}
    roles = {d["metadata"]["namespace"]: d for d in watch_roles(docs, "Role")}
    bindings = {d["metadata"]["namespace"]: d for d in watch_roles(docs, "RoleBinding")}
    assert set(roles) == set(bindings) == {"team-a", "team-b"}
    for namespace, role in roles.items():
        assert rules_by_resource(role) == NAMESPACED_RULES
        binding = bindings[namespace]
        assert binding["roleRef"]["kind"] == "Role" and binding["roleRef"]["name"] == role["metadata"]["name"]
        assert binding["subjects"][0]["namespace"] == NAMESPACE
    args = container(docs)["args"]
    assert [args[i + 1] for i, a in enumerate(args) if a == "--namespace"] == ["team-a", "team-b"]


def test_no_wildcards_secrets_or_escalation_anywhere() -> None:
    for sets in (
        [],
        ["watchNamespaces={a}"],
        ["replicas=2"],
        ["leaderElection.enabled=false"],
        ["rbac.ownerReferencesPermissionEnforcement=true"],
    ):
        for role in [d for d in render(*sets) if d["kind"] in ("ClusterRole", "Role")]:
            for rule in role["rules"]:
                assert not rule.get("nonResourceURLs"), (sets, rule)
                verbs = set(rule["verbs"])
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        assert "*" not in (group, resource) and "*" not in verbs, (sets, group, resource)
                        assert resource not in ("secrets", "pods/exec", "serviceaccounts/token"), (sets, resource)
                        assert not verbs & {"escalate", "bind", "impersonate", "deletecollection"}, (sets, resource)
                        # The one delete: an HPA that spec.autoscaling no longer asks for (reason in the chart).
                        if "delete" in verbs:
                            assert (group, resource) == ("autoscaling", "horizontalpodautoscalers"), (sets, resource)
                        if "update" in verbs:
                            assert resource.endswith("/finalizers"), (sets, resource)


def test_rbac_off_renders_none() -> None:
    docs = render("rbac.create=false", "serviceAccount.create=false", "serviceAccount.name=mine")
    assert not [d for d in docs if "Role" in d["kind"] or d["kind"] == "ServiceAccount"]
    assert operator_deployment(docs)["spec"]["template"]["spec"]["serviceAccountName"] == "mine"


def test_leader_election_role_env_and_replicas() -> None:
    for sets in ([], ["watchNamespaces={team-a}"]):  # the Lease lives in the release namespace either way
        docs = render(*sets)
        role = one(docs, "Role", LEADER_ROLE)
        assert role["metadata"]["namespace"] == NAMESPACE and role["rules"] == LEADER_RULES
        binding = one(docs, "RoleBinding", LEADER_ROLE)
        assert binding["metadata"]["namespace"] == NAMESPACE
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": LEADER_ROLE}
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": f"{RELEASE}-mlops-operator", "namespace": NAMESPACE}
        ]
    two = render("replicas=2")
    assert operator_deployment(two)["spec"]["replicas"] == 2
    assert env(two)["MLOPS_LEADER_ELECTION"] == "true" and env(two)["MLOPS_LEADER_IDENTITY"] == "fieldRef:metadata.name"
    timed = env(render("leaderElection.leaseDurationSeconds=30", "leaderElection.renewDeadlineSeconds=20"))
    assert (timed["MLOPS_LEADER_LEASE_DURATION"], timed["MLOPS_LEADER_RENEW_DEADLINE"]) == ("30", "20")
    off = render("leaderElection.enabled=false")
    assert not [d for d in off if d["metadata"]["name"] == LEADER_ROLE]
    assert {k: v for k, v in env(off).items() if k.startswith("MLOPS_LEADER")} == {"MLOPS_LEADER_ELECTION": "false"}
    for docs in (render(), two, off, render("watchNamespaces={a}")):  # kopf peering is gone for good
        assert not [d for d in docs if d["kind"].endswith("KopfPeering")]
        assert "--peering" not in container(docs)["args"]
        for role in [d for d in docs if d["kind"] in ("ClusterRole", "Role")]:
            assert not [r for r in role["rules"] if "kopf.dev" in r["apiGroups"]], role["metadata"]["name"]


def test_inconsistent_election_timings_are_refused() -> None:
    assert "leaseDurationSeconds must exceed renewDeadlineSeconds" in rejected("leaderElection.leaseDurationSeconds=10")
    assert "renewDeadlineSeconds must exceed 1.2 x retryPeriodSeconds" in rejected(
        "leaderElection.retryPeriodSeconds=9"
    )
    assert rejected("leaderElection.retryPeriodSeconds=0")  # the schema: exclusiveMinimum 0


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["replicas=-1"], "at '/replicas': minimum: got -1, want 0"),
        (["replics=1"], "additional properties 'replics' not allowed"),
        (["image.tagg=1"], "additional properties 'tagg' not allowed"),
        (["replicas=2", "leaderElection.enabled=false"], "at '/leaderElection/enabled': value must be true"),
        (["peering.enabled=true"], "additional properties 'peering' not allowed"),
        (["leaderElection.leaseDurationSeconds=1"], "at '/leaderElection/leaseDurationSeconds': minimum"),
        (["mlflow.enabled=false"], "at '/mlflow/trackingUri'"),
        (["watchNamespaces={Team_A}"], "at '/watchNamespaces/0'"),
        (["image.pullPolicy=Sometimes"], "at '/image/pullPolicy'"),
        (["metrics.port=70000"], "at '/metrics/port': maximum"),
        (["prometheus.url=prometheus:9090"], "at '/prometheus/url'"),
    ],
)
def test_schema_rejects_bad_values_readably(sets: list[str], message: str) -> None:
    stderr = rejected(*sets)
    assert "values don't meet the specifications of the schema" in stderr, stderr
    assert message in stderr, stderr


def test_values_file_keys_are_all_in_the_schema(tmp_path: Path) -> None:
    """values.yaml itself passes the schema, also when given explicitly (no key the schema does not know)."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert render(values=values, tmp=tmp_path)


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Does a matchLabels-only selector pick a pod with these labels?"""
    assert set(selector) <= {"matchLabels"}, selector
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def _operator_pods() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """The pod labels of a worker Job, a model server and the chart's operator, as the code makes them."""
    from mlops_operator.api.deployment import DeploymentSpec
    from mlops_operator.planning.jobs import worker_job
    from mlops_operator.planning.plan import Meta
    from mlops_operator.planning.serving import server_deployment

    from .builders import SERVER, WORKER

    owner = {
        "apiVersion": "mlops.dev/v1alpha1",
        "kind": "TrainingRun",
        "metadata": {"namespace": "a", "name": "t", "uid": "u"},
    }
    job = worker_job(
        owner=owner, name="t-1", command="train", settings=WORKER, extra_env={}, resources=None,
        backoff_limit=1, active_deadline_seconds=60, ttl_seconds_after_finished=None,
    )  # fmt: skip
    meta = Meta.of({"metadata": {"namespace": "a", "name": "iris", "uid": "u2", "generation": 1}})
    spec = DeploymentSpec.model_validate({"model": {"registeredModel": "iris", "alias": "production"}})
    server = server_deployment(meta, spec, "stable", 1, 1, SERVER)
    operator = operator_deployment(render())["spec"]["template"]["metadata"]["labels"]
    return job["spec"]["template"]["metadata"]["labels"], server["spec"]["template"]["metadata"]["labels"], operator


def test_network_policies_let_in_only_the_operator_its_pods_and_prometheus() -> None:
    docs = render("watchNamespaces={team-a,team-b}")
    policies = {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in docs if d["kind"] == "NetworkPolicy"}
    servers = f"{RELEASE}-mlops-operator-model-servers"
    mlflow_name = f"{RELEASE}-mlops-operator-mlflow"
    assert set(policies) == {(NAMESPACE, mlflow_name), ("team-a", servers), ("team-b", servers)}
    job_pod, server_pod, operator_pod = _operator_pods()
    mlflow_pod = one(docs, "Deployment", mlflow_name)["spec"]["template"]["metadata"]["labels"]

    mlflow = policies[(NAMESPACE, mlflow_name)]["spec"]
    assert mlflow["policyTypes"] == ["Ingress"] and _selects(mlflow["podSelector"], mlflow_pod)
    (rule,) = mlflow["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    operator_peer, workload_peer = rule["from"]
    assert set(operator_peer) == {"podSelector"} and _selects(operator_peer["podSelector"], operator_pod)
    assert not _selects(operator_peer["podSelector"], mlflow_pod)  # MLflow is not its own client
    assert _selects(workload_peer["podSelector"], job_pod) and _selects(workload_peer["podSelector"], server_pod)
    assert workload_peer["namespaceSelector"] == {
        "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-a", "team-b"]}]
    }

    serving = policies[("team-a", servers)]["spec"]
    assert _selects(serving["podSelector"], server_pod) and not _selects(serving["podSelector"], job_pod)
    (rule,) = serving["ingress"]
    same_namespace, prometheus = rule["from"]
    assert same_namespace == {"podSelector": {}}  # no namespaceSelector: only the policy's own namespace
    assert prometheus == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }


def test_notification_secret_is_mounted_by_the_kubelet_and_hosts_are_passed() -> None:
    default = env(render())
    assert "MLOPS_NOTIFICATION_SECRETS_DIR" not in default and "MLOPS_NOTIFICATION_ALLOWED_HOSTS" not in default
    custom = render(
        "notifications.secretName=mlops-notifications",
        "notifications.allowedHosts={hooks.slack.com,*.example.com}",
        "notifications.queueSize=50",
    )
    assert env(custom)["MLOPS_NOTIFICATION_SECRETS_DIR"] == "/etc/mlops/notifications"
    assert env(custom)["MLOPS_NOTIFICATION_ALLOWED_HOSTS"] == "hooks.slack.com,*.example.com"
    assert env(custom)["MLOPS_NOTIFICATION_QUEUE_SIZE"] == "50"
    mounts = {m["mountPath"]: m for m in container(custom)["volumeMounts"]}
    assert mounts["/etc/mlops/notifications"]["readOnly"] is True
    pod = operator_deployment(custom)["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == mounts["/etc/mlops/notifications"]["name"])
    assert volume["secret"] == {"secretName": "mlops-notifications", "defaultMode": 0o400}
    assert "allowedHosts" in rejected("notifications.allowedHosts={http://x}")
    assert "queueSize" in rejected("notifications.queueSize=0")


def test_network_policies_cluster_wide_listed_or_off() -> None:
    wide = [d for d in render() if d["kind"] == "NetworkPolicy"]
    assert len(wide) == 1 and wide[0]["spec"]["ingress"][0]["from"][1]["namespaceSelector"] == {}
    listed = render("networkPolicy.servingNamespaces={serve-1}", "watchNamespaces={team-a}")
    assert sorted(d["metadata"]["namespace"] for d in listed if d["kind"] == "NetworkPolicy") == [NAMESPACE, "serve-1"]
    external = render("mlflow.enabled=false", "mlflow.trackingUri=https://mlflow.example.com", "watchNamespaces={a}")
    assert [d["metadata"]["namespace"] for d in external if d["kind"] == "NetworkPolicy"] == ["a"]
    assert not [d for d in render("networkPolicy.enabled=false", "watchNamespaces={a}") if d["kind"] == "NetworkPolicy"]
    assert "servingNamespaces" in rejected("networkPolicy.servingNamespaces={Not_A_Namespace}")


def test_credentials_come_from_secrets_the_kubelet_resolves() -> None:
    default = container(render())
    assert "envFrom" not in default and env(render())["MLOPS_WORKLOAD_SECRET"] == "mlops-credentials"
    custom = render("credentials.operatorSecret=mlflow-operator", "credentials.workloadSecret=team-mlflow")
    assert container(custom)["envFrom"] == [{"secretRef": {"name": "mlflow-operator"}}]
    assert env(custom)["MLOPS_WORKLOAD_SECRET"] == "team-mlflow"
    assert env(render("credentials.workloadSecret="))["MLOPS_WORKLOAD_SECRET"] == ""
    assert env(render("credentials.feedbackSecret=team-ids"))["MLOPS_FEEDBACK_SECRET"] == "team-ids"
    assert env(render("credentials.feedbackSecret="))["MLOPS_FEEDBACK_SECRET"] == ""
    assert "operatorSecret" in rejected("credentials.operatorSecret=Not_A_Name")


def test_workload_pod_defaults_reach_the_operator_and_parse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_operator.api.pod import PodOverrides
    from mlops_operator.controllers.settings import Settings

    assert "MLOPS_WORKLOAD_POD" not in env(render())  # the default, {}: pods as the objects say
    defaults = {
        "nodeSelector": {"node-pool": "ml"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
        "priorityClassName": "ml-workloads",
        "imagePullSecrets": [{"name": "registry"}],
        "env": [{"name": "TZ", "value": "UTC"}],
    }
    values = yaml.safe_load((CHART / "values.yaml").read_text()) | {"workloadPod": defaults}
    raw = env(render(values=values, tmp=tmp_path))["MLOPS_WORKLOAD_POD"]
    monkeypatch.setenv("MLOPS_WORKLOAD_POD", raw)
    assert Settings.from_env().workload_pod == PodOverrides.model_validate(defaults)
    assert "additional properties 'hostNetwork' not allowed" in rejected("workloadPod.hostNetwork=true")
    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]["workloadPod"]["properties"]
    assert set(schema) == {field.alias for field in PodOverrides.model_fields.values()}
