"""Keep the Helm chart's CRDs identical to the generated `crds/*.yaml` (no make needed).

`mlops-operator crds` generates `crds/` from the API models; Helm installs CRDs from the chart's own
`crds/` directory, so the chart carries a byte-for-byte copy. This module copies and checks it:

    python -m mlops_operator.chartsync           # copy crds/*.yaml into charts/mlops-operator/crds/
    python -m mlops_operator.chartsync --check   # exit 1 and name the files that differ

A unit test calls `stale_chart_crds()`, so a chart with stale CRDs fails the test suite.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

CRD_DIR = Path("crds")
CHART_CRD_DIR = Path("charts") / "mlops-operator" / "crds"


def _sources(root: Path) -> dict[str, Path]:
    return {path.name: path for path in sorted((root / CRD_DIR).glob("*.yaml"))}


def stale_chart_crds(root: Path) -> list[str]:
    """File names that are missing from, differ in, or are extra in the chart's crds/ (sorted; empty: in sync)."""
    sources = _sources(root)
    if not sources:
        raise FileNotFoundError(f"no generated CRDs in {root / CRD_DIR}; run `mlops-operator crds` first")
    chart_dir = root / CHART_CRD_DIR
    copies = {path.name: path for path in chart_dir.glob("*.yaml")} if chart_dir.is_dir() else {}
    stale = {
        name for name, src in sources.items() if name not in copies or copies[name].read_bytes() != src.read_bytes()
    }
    stale.update(name for name in copies if name not in sources)
    return sorted(stale)


def sync_chart_crds(root: Path) -> list[Path]:
    """Copy crds/*.yaml into the chart and remove copies whose source is gone; returns the files written."""
    sources = _sources(root)
    if not sources:
        raise FileNotFoundError(f"no generated CRDs in {root / CRD_DIR}; run `mlops-operator crds` first")
    chart_dir = root / CHART_CRD_DIR
    chart_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in stale_chart_crds(root):
        target = chart_dir / name
        if name in sources:
            shutil.copyfile(sources[name], target)
            written.append(target)
        else:
            target.unlink()
    return written


def main(argv: list[str] | None = None) -> int:
    """`python -m mlops_operator.chartsync [--check] [--root DIR]`."""
    parser = argparse.ArgumentParser(prog="python -m mlops_operator.chartsync", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the repository root (default: .)")
    parser.add_argument("--check", action="store_true", help="fail if the chart's CRDs differ from crds/")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_chart_crds(args.root)
        if stale:
            print(
                f"stale chart CRDs in {args.root / CHART_CRD_DIR}: {', '.join(stale)}; "
                "run `python -m mlops_operator.chartsync`",
                file=sys.stderr,
            )
            return 1
        print(f"{args.root / CHART_CRD_DIR} is up to date")
        return 0
    for path in sync_chart_crds(args.root):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
