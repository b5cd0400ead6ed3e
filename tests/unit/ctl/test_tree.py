"""The text tree: one line per object, the kind's facts, colour only when asked for."""

from __future__ import annotations

import io

from mlops_operator.ctl.lineage import build_lineage
from mlops_operator.ctl.style import Style, wants_colour
from mlops_operator.ctl.tree import render_tree

from .objects import MODEL, namespace_objects


def test_plain_tree_shows_each_kinds_facts() -> None:
    text = render_tree(build_lineage(namespace_objects()), Style(False))
    lines = text.splitlines()
    assert "\x1b[" not in text
    assert lines[0] == "Dataset iris  Ready  version sha256:abababababab  rows 150"
    assert lines[1] == "├── TrainingRun iris-train  Succeeded  accuracy 0.967 f1_macro 0.960"
    assert lines[2] == (
        f"│   └── ModelVersion {MODEL}-8  Superseded  v8  promoted to 'production' 2026-12-04T10:01:00Z"
        "  gates accuracy 0.967 vs 0.900 ✓"
    )
    assert lines[3].endswith("triggered by drift")
    assert lines[5] == (
        "│       └── Deployment iris [stable]  Progressing  stable v9  canary v10 50% step 2/3"
        "  drift psi 0.007 (sepal_length)  ready 2/2"
    )
    assert lines[8] == (
        "        └── Deployment iris [canary]  Progressing  canary v10 50% step 2/3  analysis error-rate 0.000 vs 0.050"
        " ✓, latency-p99 - vs 2.000 ? (Prometheus unreachable)"
    )
    assert lines[9:] == [
        "Dataset gone  (not found)",
        "└── TrainingRun lost-run  Pending",
        f"ModelVersion {MODEL}-3  Rejected  v3  gates f1_macro 0.500 vs 0.960 ✗",
        "Deployment empty  -  no stable version  ready 0/2",
    ]


def test_colour_marks_phases_by_meaning() -> None:
    text = render_tree(build_lineage(namespace_objects()), Style(True))
    assert "\x1b[32mReady\x1b[0m" in text  # good: green
    assert "\x1b[31mRejected\x1b[0m" in text and "\x1b[31m✗\x1b[0m" in text  # bad: red
    assert "\x1b[33mProgressing\x1b[0m" in text  # busy: yellow
    assert "\x1b[2mSuperseded\x1b[0m" in text


def test_drift_above_threshold_is_red() -> None:
    objects = namespace_objects()
    objects["Deployment"][0]["status"]["drift"].update(score=0.4, feature="petal_length")
    text = render_tree(build_lineage(objects), Style(True))
    assert "\x1b[31mdrift psi 0.400 (petal_length)\x1b[0m" in text


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_tty_without_no_color() -> None:
    assert wants_colour(Tty(), {}) is True
    assert wants_colour(Tty(), {"NO_COLOR": "1"}) is False
    assert wants_colour(Tty(), {"NO_COLOR": ""}) is True  # no-color.org: only a non-empty value disables
    assert wants_colour(io.StringIO(), {}) is False
