"""The local Prometheus' config: the chart's alert rules, host-run operators through file_sd, reload on change."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import yaml
from mlops_operator.localcluster import services
from mlops_operator.localcluster.config import ClusterConfig

REPO = Path(__file__).resolve().parents[2]


def test_the_config_loads_the_charts_rule_file_and_evaluates_often(tmp_path: Path) -> None:
    config = services.prometheus_config(ClusterConfig(state_dir=tmp_path))
    assert config["rule_files"] == [str(REPO / "charts" / "mlops-operator" / "files" / "prometheus-rules.yaml")]
    assert config["global"] == {"scrape_interval": "5s", "evaluation_interval": "5s"}  # type: ignore[comparison-overlap]


def test_promtool_accepts_the_written_config(tmp_path: Path) -> None:
    path, changed = services.write_prometheus_config(ClusterConfig(state_dir=tmp_path))
    assert changed
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool is not installed: `apt-get install prometheus` (make system-deps does it)"
    result = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "rules found" in result.stdout


def test_writing_the_same_config_again_reports_no_change(tmp_path: Path) -> None:
    cfg = ClusterConfig(state_dir=tmp_path)
    path, _ = services.write_prometheus_config(cfg)
    assert services.write_prometheus_config(cfg) == (path, False)
    path.write_text("global: {}\n")  # as written by a version without rules: a warm cluster must reload
    assert services.write_prometheus_config(cfg) == (path, True)
    assert "rule_files" in yaml.safe_load(path.read_text())


def test_host_operators_are_registered_as_file_sd_targets(tmp_path: Path) -> None:
    config = services.prometheus_config(ClusterConfig(state_dir=tmp_path))
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "mlops-operator")  # type: ignore[attr-defined]
    assert job["honor_labels"] is True
    (pattern,) = job["file_sd_configs"][0]["files"]
    path = services.register_operator(tmp_path, "t-1234-20001", "127.0.0.1:20011")
    assert path in Path(pattern).parent.glob(Path(pattern).name)
    assert json.loads(path.read_text()) == [{"targets": ["127.0.0.1:20011"], "labels": {}}]
    services.unregister_operator(tmp_path, "t-1234-20001")
    services.unregister_operator(tmp_path, "t-1234-20001")  # already gone: not an error
    assert not list(Path(pattern).parent.iterdir())
