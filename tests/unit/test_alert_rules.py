"""The chart's alert rules (charts/mlops-operator/files/prometheus-rules.yaml) through the real promtool.

promtool ships with Debian's prometheus package (`make system-deps`); a machine without it fails here.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "charts" / "mlops-operator" / "files" / "prometheus-rules.yaml"
CASES = Path(__file__).parent / "promtool" / "alert_rules_test.yaml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary is not None, "promtool is not installed: `apt-get install prometheus` (make system-deps does it)"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, check=False)


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_accepts_the_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


def test_promtool_unit_cases_pass() -> None:
    result = promtool("test", "rules", str(CASES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_cases_can_fail(tmp_path: Path) -> None:
    """The cases compare the rendered alerts: a changed threshold makes promtool fail (so the pass above means
    something)."""
    rules = tmp_path / "prometheus-rules.yaml"
    rules.write_text(RULES.read_text().replace("> 0.05", "> 0.5"))
    cases = yaml.safe_load(CASES.read_text())
    cases["rule_files"] = [str(rules)]
    (tmp_path / "cases.yaml").write_text(yaml.safe_dump(cases))
    result = promtool("test", "rules", str(tmp_path / "cases.yaml"))
    assert result.returncode != 0 and "alertname: MLOpsServerErrorRate" in result.stderr, result.stdout + result.stderr


def test_every_alert_has_a_case_that_fires_and_one_that_does_not() -> None:
    cases = yaml.safe_load(CASES.read_text())
    assert cases["rule_files"] == ["../../../charts/mlops-operator/files/prometheus-rules.yaml"]
    fires: set[str] = set()
    silent: set[str] = set()
    for test in cases["tests"]:
        for case in test["alert_rule_test"]:
            (fires if case["exp_alerts"] else silent).add(case["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert names - fires == set(), "alerts never shown firing"
    assert names - silent == set(), "alerts never shown staying silent"


def test_every_alert_has_a_severity_summary_description_and_runbook() -> None:
    names = [rule["alert"] for rule in alerts()]
    assert len(names) == len(set(names))
    documented = (REPO / "docs" / "alerts.md").read_text()
    for rule in alerts():
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
        assert {"summary", "description", "runbook"} <= rule["annotations"].keys(), rule["alert"]
        assert f"## {rule['alert']}" in documented, f"{rule['alert']} has no section in docs/alerts.md"


def test_the_issue_asks_for_these_alerts() -> None:
    """Rollout aborted or stuck, drift, retraining failed or rejected, server errors, operator down or erroring."""
    assert {rule["alert"] for rule in alerts()} >= {
        "MLOpsCanaryRolledBack",
        "MLOpsRolloutStuck",
        "MLOpsDriftDetected",
        "MLOpsRetrainingFailed",
        "MLOpsModelVersionRejected",
        "MLOpsServerErrorRate",
        "MLOpsOperatorDown",
        "MLOpsOperatorReconcileErrors",
    }
