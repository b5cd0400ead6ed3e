"""Every metric the chart's dashboard and alert rules name is one the code exports (no panel on a metric nobody
emits): names collected from the operator's prometheus_client registry, the model server's, and contract.py."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlops_operator import contract
from mlops_operator.controllers import metrics as operator_metrics
from mlops_operator.server.metrics import ServerMetrics
from prometheus_client import REGISTRY, CollectorRegistry

REPO = Path(__file__).resolve().parents[2]
FILES = REPO / "charts" / "mlops-operator" / "files"
DASHBOARD = FILES / "grafana-dashboard.json"
RULES = FILES / "prometheus-rules.yaml"
# Series Prometheus itself makes.
PROMETHEUS_OWN = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "ALERTS", "ALERTS_FOR_STATE"}
# The sample names prometheus_client writes for each family type.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "gauge": ("",),
    "info": ("_info",),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "unknown": ("",),
}


def sample_names(registry: CollectorRegistry) -> set[str]:
    """Every sample name the registry's families can expose, with or without children yet."""
    return {family.name + suffix for family in registry.collect() for suffix in SUFFIXES[family.type]}


def exported() -> set[str]:
    assert operator_metrics.RECONCILES is not None  # the import registers the operator's families in REGISTRY
    server = ServerMetrics("m", "stable", "d", drift=True, feedback=True, shadow=True)
    shared = {value for key, value in vars(contract).items() if key.startswith("METRIC_")}
    return sample_names(REGISTRY) | sample_names(server.registry) | shared


# PromQL words that are not metric names where an identifier may stand.
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
KEYWORDS |= {"start", "end", "inf", "nan"}
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE)
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
NAME_MATCHER = re.compile(r'__name__\s*=\s*"([^"]+)"')
IDENTIFIER = re.compile(r"(?<![\w.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")
NUMBER_OR_DURATION = re.compile(r"\b\d+(?:\.\d+)?(?:[eE][+-]?\d+|ms|[smhdwy])*\b|\b0x[0-9a-fA-F]+\b")


def grafana_to_promql(expr: str) -> str:
    """Grafana's interval variables as a duration; other `$variables` only stand inside label values."""
    return re.sub(r"\$__\w+", "5m", expr)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (syntax is checked by promtool, see below)."""
    names = set(NAME_MATCHER.findall(expr))
    text = STRING.sub('""', expr)
    text = re.sub(r"\{[^{}]*\}", " ", text)  # label matchers (their strings are gone, so no brace is inside one)
    text = re.sub(r"\[[^\[\]]*\]", " ", text)  # ranges and subqueries
    text = GROUPING.sub(" ", text)
    text = NUMBER_OR_DURATION.sub(" ", text)
    for name, call in IDENTIFIER.findall(text):
        if not call and name.lower() not in KEYWORDS:
            names.add(name)
    return names


def dashboard_queries() -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and every templating query of the dashboard."""
    board = json.loads(DASHBOARD.read_text())

    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels") or [])

    for panel in panels(board["panels"]):
        for target in panel.get("targets") or []:
            yield f"panel {panel['title']!r} {target['refId']}", grafana_to_promql(target["expr"])
    for variable in board["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        # Grafana's label_values(selector, label): the selector is PromQL.
        found = re.fullmatch(r"label_values\((.*),\s*\w+\)", query)
        assert found, f"variable {variable['name']}: unknown query {query!r}"
        yield f"variable {variable['name']}", grafana_to_promql(found.group(1))


def rule_queries() -> Iterator[tuple[str, str]]:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            yield f"rule {rule.get('alert') or rule.get('record')}", str(rule["expr"])


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        ('rate(a_total{job="x", le=~"b|c"}[5m]) / on (pod) group_left(node) b', {"a_total", "b"}),
        ("histogram_quantile(0.99, sum by (le, kind) (rate(h_bucket[1m:10s])))", {"h_bucket"}),
        ("time() - ts_seconds > 1800 and absent(x) or vector(1e3) unless y offset 5m", {"ts_seconds", "x", "y"}),
        ('{__name__="named", by="sum(x)"} == bool 1', {"named"}),
        ("sum without (instance) (g) > 0x10 + Inf", {"g"}),
        ('topk(3, count_values("v", g:recorded))', {"g:recorded"}),
    ],
)
def test_metric_names_are_found_in_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_the_collected_names_hold_what_the_code_exports() -> None:
    names = exported()
    assert {
        "mlops_operator_reconciles_total",
        "mlops_operator_reconcile_duration_seconds_bucket",
        "mlops_operator_drift_score",
        "mlops_server_requests_total",
        "mlops_server_request_duration_seconds_bucket",
        "mlops_server_shadow_rows_total",
        "mlops_server_feedback_absolute_error_count",
    } <= names
    assert "mlops_server_requests" not in names and "mlops_operator_drift_score_total" not in names


def test_contract_names_are_all_exported_by_the_server() -> None:
    server = ServerMetrics("m", "stable", "d", drift=True, feedback=True, shadow=True)
    shared = {value for key, value in vars(contract).items() if key.startswith("METRIC_")}
    histograms = {contract.METRIC_DURATION, contract.METRIC_FEEDBACK_ABSOLUTE_ERROR}
    assert shared - histograms <= sample_names(server.registry)
    assert {f"{h}_bucket" for h in histograms} <= sample_names(server.registry)


def test_dashboard_and_rules_name_only_exported_metrics() -> None:
    known = exported() | PROMETHEUS_OWN
    queries = [*dashboard_queries(), *rule_queries()]
    assert len(queries) > 20
    unknown = {where: sorted(metric_names(expr) - known) for where, expr in queries if metric_names(expr) - known}
    assert unknown == {}
    assert all(metric_names(expr) for _, expr in queries), "a query that names no metric"


def test_an_unexported_metric_is_caught() -> None:
    known = exported()
    assert metric_names("sum(rate(mlops_server_requests_count[5m]))") - known == {"mlops_server_requests_count"}
    assert metric_names("mlops_operator_canary_weight_total") - known == {"mlops_operator_canary_weight_total"}


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query (as a recording rule), so the name extraction above sees well-formed PromQL."""
    binary = shutil.which("promtool")
    assert binary is not None, "promtool is not installed: `apt-get install prometheus` (make system-deps does it)"
    rules = [
        {"record": f"dashboard:query_{i}", "expr": re.sub(r"\$(\w+)", r"\1", expr)}
        for i, (_, expr) in enumerate(dashboard_queries())
    ]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([binary, "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_has_the_panels_the_issue_asks_for() -> None:
    board = json.loads(DASHBOARD.read_text())
    titles = " | ".join(p["title"].lower() for p in board["panels"])
    for topic in ("requests", "latency", "error rate", "canary weight", "drift", "retraining", "reconciles"):
        assert topic in titles, topic
    by_track = [e for where, e in dashboard_queries() if where.startswith("panel") and "mlops_server_requests" in e]
    assert len(by_track) >= 3 and all("track" in e and "version" in e for e in by_track)
    assert board["uid"] == "mlops-operator" and board["templating"]["list"][0]["type"] == "datasource"
