"""The read commands of `kubectl mlops`: get, history, why. Each gathers with `kube.Reader`, then renders
with the pure modules; nothing here writes to the cluster."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import IO, Any

from ..api.kinds import ALL_KINDS, DEPLOYMENT, Kind
from .history import derive_history, render_history
from .kube import CtlError, Reader, kind_named
from .lineage import build_lineage, lineage_document, select
from .style import Style, wants_colour
from .tree import render_tree
from .why import explain, render_explanation

Obj = dict[str, Any]
CLEAR_SCREEN = "\x1b[H\x1b[2J"
WATCH_INTERVAL = 2.0  # seconds between polls: 4 lists per poll stays far below the API's default rate limits


def _style(out: IO[str]) -> Style:
    return Style(wants_colour(out, os.environ))


def lineage_text(objects: dict[str, list[Obj]], namespace: str, name: str | None, output: str, style: Style) -> str:
    """What `get` prints for one snapshot of the namespace."""
    roots = build_lineage(objects)
    if name is not None:
        roots = select(roots, name)
        if not roots:
            raise CtlError(f"no mlops.dev object named {name!r} in namespace {namespace}")
    if output == "json":
        return json.dumps(lineage_document(namespace, roots), indent=2, sort_keys=True)
    return render_tree(roots, style) if roots else f"no mlops.dev objects in namespace {namespace}"


def watch(
    snapshot: Callable[[], str],
    out: IO[str],
    clear: bool,
    interval: float = WATCH_INTERVAL,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Print the view, then again whenever it changes (a bounded poll), until Ctrl-C; exit 0 on Ctrl-C.

    On a terminal each change redraws the screen; in a pipe each new view follows the last, separated by a
    blank line, so a log of a watch reads as a sequence of states.
    """
    shown: str | None = None
    try:
        while True:
            view = snapshot()
            if view != shown:
                out.write((CLEAR_SCREEN if clear else "" if shown is None else "\n") + view + "\n")
                out.flush()
                shown = view
            sleep(interval)
    except KeyboardInterrupt:
        return 0


def cmd_get(args: argparse.Namespace, reader: Reader, out: IO[str]) -> int:
    """`get [NAME] [--watch] [-o json]`."""
    style = _style(out) if args.output == "tree" else Style(False)

    def snapshot() -> str:
        return lineage_text(reader.list_all(), reader.namespace, args.name, args.output, style)

    if args.watch:
        return watch(snapshot, out, clear=out.isatty() and args.output == "tree", interval=args.interval)
    out.write(snapshot() + "\n")
    return 0


def _deployment_events(reader: Reader, deployment: Obj) -> list[Obj]:
    uid = deployment["metadata"].get("uid")
    return [
        e for e in reader.events(deployment["metadata"]["name"]) if (e.get("involvedObject") or {}).get("uid") == uid
    ]


def cmd_history(args: argparse.Namespace, reader: Reader, out: IO[str]) -> int:
    """`history DEPLOYMENT`."""
    name = args.deployment
    if "/" in name:
        kind_text, name = name.split("/", 1)
        if kind_named(kind_text) is not DEPLOYMENT:
            raise CtlError(f"history is about a Deployment (deployments.mlops.dev), not a {kind_text}")
    deployment = reader.get(DEPLOYMENT, name)
    if deployment is None:
        raise CtlError(f"deployments.mlops.dev {name!r} not found in namespace {reader.namespace}")
    objects = reader.list_all()
    history = derive_history(
        deployment, objects["ModelVersion"], objects["TrainingRun"], _deployment_events(reader, deployment)
    )
    out.write(render_history(history, datetime.now(UTC), _style(out)) + "\n")
    return 0


def resolve(reader: Reader, ref: str) -> list[Obj]:
    """The objects `ref` names: `KIND/NAME` one kind, a bare NAME every kind that has one."""
    kinds: tuple[Kind, ...] = ALL_KINDS
    name = ref
    if "/" in ref:
        kind_text, name = ref.split("/", 1)
        kinds = (kind_named(kind_text),)
    found = []
    for kind in kinds:
        obj = reader.get(kind, name)
        if obj is not None:
            found.append(obj)
    if not found:
        what = kinds[0].singular if len(kinds) == 1 else "mlops.dev object"
        raise CtlError(f"no {what} named {name!r} in namespace {reader.namespace}")
    return found


def cmd_why(args: argparse.Namespace, reader: Reader, out: IO[str]) -> int:
    """`why NAME` or `why KIND/NAME`: every object of that name is explained (a Dataset and a Deployment are
    often both called after the model)."""
    style = _style(out)
    found = resolve(reader, args.ref)
    events = reader.events(found[0]["metadata"]["name"])
    texts = [render_explanation(explain(obj, events, style), style) for obj in found]
    out.write("\n\n".join(texts) + "\n")
    return 0


def add_commands(subparsers: Any) -> None:
    """Register get, history and why on the plugin's subparsers (each sets `run(args, reader, out) -> int`)."""
    get = subparsers.add_parser("get", help="the lineage as a tree: Dataset → TrainingRun → ModelVersion → Deployment")
    get.add_argument("name", nargs="?", help="only the lineage through objects of this name (any kind)")
    get.add_argument("--watch", "-w", action="store_true", help="redraw on change until Ctrl-C")
    get.add_argument("--interval", type=float, default=WATCH_INTERVAL, help=argparse.SUPPRESS)
    get.add_argument("--output", "-o", choices=["tree", "json"], default="tree", help="tree (default) or json")
    get.set_defaults(run=cmd_get)

    history = subparsers.add_parser("history", help="what a Deployment served when, and the cause of each change")
    history.add_argument("deployment", help="the deployments.mlops.dev name")
    history.set_defaults(run=cmd_history)

    why = subparsers.add_parser("why", help="the conditions and recent Events behind an object's phase")
    why.add_argument("ref", metavar="NAME", help="an object name, or KIND/NAME (dataset, tr, mv, mldeploy, ...)")
    why.set_defaults(run=cmd_why)


def stdout() -> IO[str]:
    """The stream commands write to (a seam for tests)."""
    return sys.stdout
