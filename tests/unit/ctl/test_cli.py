"""The plugin's command line: the console script, the hook for more commands, flags, get/history/why/--watch."""

from __future__ import annotations

import argparse
import io
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from mlops_operator import cli as operator_cli
from mlops_operator.api.kinds import Kind
from mlops_operator.ctl import cli, read
from mlops_operator.ctl.kube import CtlError

from .objects import NS, namespace_objects

REPO = Path(__file__).resolve().parents[3]


def test_kubectl_mlops_console_script_points_at_the_plugin_main() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["kubectl-mlops"] == "mlops_operator.ctl.cli:main"
    module, _, function = scripts["kubectl-mlops"].partition(":")
    assert getattr(__import__(module, fromlist=[function]), function) is cli.main


def test_another_module_can_add_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    def add_commands(subparsers: Any) -> None:
        extra = subparsers.add_parser("extra")
        extra.add_argument("deployment")
        extra.set_defaults(run=lambda args, reader, out: 0)

    monkeypatch.setattr(cli, "COMMAND_MODULES", (*cli.COMMAND_MODULES, add_commands))
    args = cli.build_parser().parse_args(["extra", "iris", "-n", "demo"])
    assert (args.command, args.deployment, args.sub_namespace) == ("extra", "iris", "demo")
    commands = {"get", "history", "why", "promote", "abort", "pause", "resume", "approve", "extra"}
    assert set(cli.build_parser()._subparsers._group_actions[0].choices) == commands  # type: ignore[union-attr]


def test_connection_flags_go_before_or_after_the_command() -> None:
    parser = cli.build_parser()
    before = parser.parse_args(["--kubeconfig", "/k", "--context", "c", "-n", "a", "get"])
    after = parser.parse_args(["get", "-n", "b", "--kubeconfig", "/j", "-o", "json", "--watch", "x", "--context", "d"])
    assert (before.kubeconfig, before.context, before.namespace, before.sub_namespace) == ("/k", "c", "a", None)
    assert after.sub_context == "d"
    assert (after.sub_kubeconfig, after.sub_namespace, after.output, after.watch, after.name) == (
        "/j",
        "b",
        "json",
        True,
        "x",
    )


def test_mlops_operator_ctl_runs_the_same_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(SystemExit) as exit_info:
        operator_cli.main(["ctl", "--kubeconfig", str(missing), "get"])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == f"error: kubeconfig {missing} does not exist\n"
    with pytest.raises(SystemExit):
        operator_cli.main(["ctl", "--help"])
    assert capsys.readouterr().out.startswith("usage: mlops-operator ctl")


class FakeReader:
    """The gather side, answering from fixture objects (the boundary the commands read through)."""

    def __init__(self, objects: dict[str, list[dict]], events: list[dict] | None = None) -> None:
        self.namespace, self.objects, self.all_events = NS, objects, events or []

    def list_all(self) -> dict[str, list[dict]]:
        return self.objects

    def get(self, kind: Kind, name: str) -> dict | None:
        return next((o for o in self.objects.get(kind.kind, []) if o["metadata"]["name"] == name), None)

    def events(self, name: str | None = None) -> list[dict]:
        return [e for e in self.all_events if name is None or e["involvedObject"]["name"] == name]


def run_command(argv: list[str], reader: FakeReader) -> str:
    args = cli.build_parser().parse_args(argv)
    out = io.StringIO()
    assert args.run(args, reader, out) == 0
    return out.getvalue()


def test_get_prints_the_tree_or_json_and_filters_by_name() -> None:
    reader = FakeReader(namespace_objects())
    tree = run_command(["get"], reader)
    assert tree.startswith("Dataset iris  Ready") and "\x1b[" not in tree  # a StringIO is no TTY
    document = json.loads(run_command(["get", "-o", "json", "iris-classifier-3"], reader))
    assert [(i["kind"], i["name"]) for i in document["items"]] == [("ModelVersion", "iris-classifier-3")]
    with pytest.raises(CtlError, match=re.escape("no mlops.dev object named 'nope' in namespace demo")):
        run_command(["get", "nope"], reader)
    assert run_command(["get"], FakeReader({})) == "no mlops.dev objects in namespace demo\n"


def test_why_explains_every_kind_of_that_name_and_accepts_kind_slash_name() -> None:
    objects = namespace_objects()
    reader = FakeReader(objects)
    both = run_command(["why", "iris"], reader)
    assert "Dataset iris is Ready" in both and "Deployment iris is Progressing" in both
    only = run_command(["why", "mldeploy/iris"], reader)
    assert "Deployment iris is Progressing" in only and "Dataset iris" not in only
    with pytest.raises(CtlError, match="no trainingrun named 'iris'"):
        run_command(["why", "tr/iris"], reader)
    with pytest.raises(CtlError, match="unknown kind 'pod'"):
        run_command(["why", "pod/iris"], reader)


def test_history_uses_only_the_deployments_own_events() -> None:
    dep_event = {
        "involvedObject": {"name": "iris", "uid": "uid-dep-iris"},
        "reason": "CanaryStep",
        "message": "version 10 at 50%",
        "type": "Normal",
        "lastTimestamp": "2026-12-04T10:26:00Z",
    }
    dataset_event = {**dep_event, "involvedObject": {"name": "iris", "uid": "uid-ds-iris"}, "reason": "NewVersion"}
    reader = FakeReader(namespace_objects(), [dep_event, dataset_event])
    text = run_command(["history", "iris"], reader)
    assert "CanaryStep" in text and "NewVersion" not in text
    with pytest.raises(CtlError, match=re.escape("deployments.mlops.dev 'gone' not found")):
        run_command(["history", "mldeploy/gone"], FakeReader(namespace_objects()))
    with pytest.raises(CtlError, match="history is about a Deployment"):
        run_command(["history", "dataset/iris"], FakeReader(namespace_objects()))
    again = run_command(["history", "deployments.mlops.dev/iris"], reader)
    # (the open interval's duration runs on the real clock: compare the rest)
    assert [line for line in again.splitlines() if " now " not in line] == [
        line for line in text.splitlines() if " now " not in line
    ]


def test_watch_redraws_only_on_change_and_exits_0_on_ctrl_c() -> None:
    views = iter(["A", "A", "B", "B", "C"])
    naps: list[float] = []

    def sleep(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 5:
            raise KeyboardInterrupt

    out = io.StringIO()
    assert read.watch(lambda: next(views), out, clear=False, interval=0.5, sleep=sleep) == 0
    assert out.getvalue() == "A\n\nB\n\nC\n"
    assert naps == [0.5] * 5
    tty = io.StringIO()
    views = iter(["A", "B"])
    naps.clear()
    naps.extend([0.0] * 3)
    read.watch(lambda: next(views), tty, clear=True, sleep=sleep)
    assert tty.getvalue() == f"{read.CLEAR_SCREEN}A\n{read.CLEAR_SCREEN}B\n"


def test_errors_are_one_line_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}}]\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\nusers: [{name: u, user: {token: t}}]\n"
    )
    assert cli.run(["--kubeconfig", str(kubeconfig), "get"]) == 1
    assert capsys.readouterr().err.startswith("error: cannot reach the API server:")


def test_parser_is_argparse() -> None:
    assert isinstance(cli.build_parser("x"), argparse.ArgumentParser)
