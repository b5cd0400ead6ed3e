"""The Prometheus pod-discovery bridge labels targets as Prometheus' own Kubernetes pod role does."""

from __future__ import annotations

from mlops_operator.localcluster.config import ClusterConfig
from mlops_operator.localcluster.podsd import target_groups
from mlops_operator.localcluster.services import prometheus_config

POD = {
    "metadata": {
        "namespace": "ns",
        "name": "iris-stable-abc",
        "uid": "u1",
        "labels": {"app.kubernetes.io/name": "iris", "mlops.dev/track": "stable"},
        "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "8080"},
    },
    "spec": {"nodeName": "mlops-node", "containers": [{"name": "server", "ports": [{"containerPort": 8080}]}]},
    "status": {"phase": "Running", "podIP": "10.244.0.7", "conditions": [{"type": "Ready", "status": "True"}]},
}


def test_one_target_per_container_port_with_pod_meta_labels() -> None:
    (group,) = target_groups([POD, {**POD, "status": {"phase": "Pending"}}])
    assert group["targets"] == ["10.244.0.7:8080"]
    labels = group["labels"]
    assert labels["__meta_kubernetes_pod_annotation_prometheus_io_scrape"] == "true"
    assert labels["__meta_kubernetes_pod_label_mlops_dev_track"] == "stable"
    assert labels["__meta_kubernetes_pod_container_port_number"] == "8080"
    assert (labels["__meta_kubernetes_namespace"], labels["__meta_kubernetes_pod_ready"]) == ("ns", "true")


def test_scrape_config_keeps_annotated_running_pods_and_uses_the_bridge() -> None:
    config = prometheus_config(ClusterConfig())
    job = config["scrape_configs"][0]  # type: ignore[index]
    assert job["job_name"] == "kubernetes-pods"
    assert job["http_sd_configs"][0]["url"] == "http://127.0.0.1:19091/targets"
    keep = [r for r in job["relabel_configs"] if r.get("action") == "keep"]
    assert keep[0]["source_labels"] == ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"]
