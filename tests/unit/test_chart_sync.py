"""The chart's CRDs are byte-identical copies of the generated crds/*.yaml."""

from __future__ import annotations

import shutil
from pathlib import Path

from mlops_operator.api.crdgen import crd_files
from mlops_operator.chartsync import CHART_CRD_DIR, CRD_DIR, main, stale_chart_crds, sync_chart_crds

REPO = Path(__file__).resolve().parents[2]


def test_chart_crds_match_crds_dir() -> None:
    stale = stale_chart_crds(REPO)
    assert not stale, (
        f"charts/mlops-operator/crds differs from crds/ in {stale}: run `python -m mlops_operator.chartsync`"
    )
    # ...and crds/ matches the models (so the chart does too).
    assert {p.name: p.read_text() for p in (REPO / CHART_CRD_DIR).glob("*.yaml")} == crd_files()


def test_sync_detects_and_repairs_drift(tmp_path: Path) -> None:
    shutil.copytree(REPO / CRD_DIR, tmp_path / CRD_DIR)
    assert stale_chart_crds(tmp_path) == sorted(p.name for p in (REPO / CRD_DIR).glob("*.yaml"))  # no chart copy yet
    assert len(sync_chart_crds(tmp_path)) == len(list((REPO / CRD_DIR).glob("*.yaml"))) and not stale_chart_crds(
        tmp_path
    )
    chart = tmp_path / CHART_CRD_DIR
    edited = chart / "mlops.dev_datasets.yaml"
    edited.write_text(edited.read_text().replace("minRows", "minimumRows"))
    (chart / "mlops.dev_old.yaml").write_text("kind: CustomResourceDefinition\n")
    assert stale_chart_crds(tmp_path) == ["mlops.dev_datasets.yaml", "mlops.dev_old.yaml"]
    assert main(["--root", str(tmp_path), "--check"]) == 1
    assert main(["--root", str(tmp_path)]) == 0
    assert stale_chart_crds(tmp_path) == [] and not (chart / "mlops.dev_old.yaml").exists()
    assert main(["--root", str(tmp_path), "--check"]) == 0
