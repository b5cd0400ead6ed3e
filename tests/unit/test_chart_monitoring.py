"""The chart's PrometheusRule and Grafana dashboard ConfigMap, rendered by the real helm (`helm lint`/`template`)."""

from __future__ import annotations

import json
from typing import Any

import yaml

from .test_chart_render import CHART, NAMESPACE, RELEASE, helm, one, rejected, render

FILES = CHART / "files"


def dashboard_config_map(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (board,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard")]
    return board


def test_off_by_default() -> None:
    kinds = {d["kind"] for d in render()}
    assert "PrometheusRule" not in kinds
    assert not [d for d in render() if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard")]


def test_helm_lint_with_both_on() -> None:
    sets = ["metrics.prometheusRule.enabled=true", "metrics.dashboard.enabled=true"]
    result = helm("lint", str(CHART), "--strict", "--namespace", NAMESPACE, *[a for s in sets for a in ("--set", s)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_rule_is_the_rule_file_verbatim() -> None:
    docs = render("metrics.prometheusRule.enabled=true", "metrics.prometheusRule.labels.release=kps")
    rule = one(docs, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["namespace"] == NAMESPACE and rule["metadata"]["labels"]["release"] == "kps"
    assert rule["spec"] == yaml.safe_load((FILES / "prometheus-rules.yaml").read_text())
    # Prometheus' own templates reach it untouched (Helm would fail or blank them if it evaluated them).
    annotations = rule["spec"]["groups"][0]["rules"][0]["annotations"]
    assert "{{ $labels.namespace }}/{{ $labels.deployment }}" in annotations["summary"]


def test_dashboard_config_map_for_the_grafana_sidecar() -> None:
    docs = render("metrics.dashboard.enabled=true")
    board = dashboard_config_map(docs)
    assert board["metadata"]["name"] == f"{RELEASE}-mlops-operator-dashboard"
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1" and board["metadata"]["namespace"] == NAMESPACE
    source = json.loads((FILES / "grafana-dashboard.json").read_text())
    assert json.loads(board["data"]["mlops-operator.json"]) == source
    moved = render(
        "metrics.dashboard.enabled=true",
        "metrics.dashboard.namespace=monitoring",
        "metrics.dashboard.labels.grafana_dashboard=null",
        "metrics.dashboard.labels.dashboards=mlops",
        "metrics.dashboard.annotations.grafana_folder=MLOps",
    )
    board = dashboard_config_map(moved)
    assert board["metadata"]["namespace"] == "monitoring"
    labels = board["metadata"]["labels"]
    assert labels["dashboards"] == "mlops" and "grafana_dashboard" not in labels
    assert board["metadata"]["annotations"] == {"grafana_folder": "MLOps"}


def test_servicemonitor_keeps_the_objects_namespace_label() -> None:
    monitor = one(render("metrics.serviceMonitor.enabled=true"), "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["honorLabels"] is True


def test_schema_refuses_bad_monitoring_values() -> None:
    assert "prometheusRule" in rejected("metrics.prometheusRule.enabled=yes please")
    assert "namespace" in rejected("metrics.dashboard.namespace=Not_A_Namespace")
    assert "dashboard" in rejected("metrics.dashboard.folder=x")
