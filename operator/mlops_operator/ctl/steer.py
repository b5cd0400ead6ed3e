"""`kubectl mlops promote|abort|pause|resume|approve`: steer a rollout through documented spec fields.

Every command is one JSON merge patch of a field the API documents, so the same action is a plain
`kubectl patch` and shows in Argo CD's diff (the command prints the equivalent):

    pause      spec.paused: true                       (deployments.mlops.dev)
    resume     spec.paused: false
    promote    spec.rolloutRequest {action: Promote, version: <canary>, step: <status.step>, requestedAt}
    promote --full   ... {action: PromoteFull, version: <canary>, requestedAt}
    abort      ... {action: Abort, version: <canary>, requestedAt}
    approve    spec.promote: true                      (modelversions.mlops.dev, manual mode)

A request names the canary's version and step as this command read them from status, so a request
that reaches the operator after the canary moved on is ignored rather than applied to a later one;
the command then waits (`--wait`, default 30 s) for `status.lastRequest` and prints the outcome.
Writes carry the field manager `kubectl-mlops`, which ModelVersion approvals record as `by`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from ..api.common import GROUP, VERSION
from ..kubeapi import ApiError, Kube, custom_path

if TYPE_CHECKING:
    from .kube import Reader, Target

FIELD_MANAGER = "kubectl-mlops"
Obj = dict[str, Any]

# Exit codes: 0 done (or applied), 1 refused or ignored, 2 not confirmed within --wait.
OK, REFUSED, UNCONFIRMED = 0, 1, 2
WRITE_ATTEMPTS = 3  # a 409 (the object changed between read and write) reads it again


class SteerError(Exception):
    """A command that cannot be carried out as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Patch:
    """One merge patch of one object, and how the same is done with plain kubectl."""

    plural: str
    short: str
    name: str
    body: Obj

    def kubectl(self, namespace: str) -> str:
        """The plain `kubectl patch` that writes the same field."""
        return f"kubectl -n {namespace} patch {self.short} {self.name} --type merge -p '{json.dumps(self.body)}'"


def now_rfc3339() -> str:
    """The request time, in the format the API server writes."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pause_patch(name: str, body: Obj, paused: bool) -> Patch:
    """spec.paused; refused when it already has that value (nothing would change)."""
    if bool((body.get("spec") or {}).get("paused")) == paused:
        raise SteerError(f"deployments.mlops.dev/{name} is already {'paused' if paused else 'not paused'}")
    return Patch("deployments", "mldeploy", name, {"spec": {"paused": paused}})


def request_patch(
    name: str, body: Obj, action: str, requested_at: str, version: int | None = None, reason: str | None = None
) -> Patch:
    """spec.rolloutRequest for the canary that status shows now (`version`: refuse unless it is that one)."""
    status = body.get("status") or {}
    canary = status.get("canaryVersion")
    if canary is None:
        raise SteerError(f"deployments.mlops.dev/{name} runs no canary: nothing to {_verb(action)}")
    if version is not None and version != canary:
        raise SteerError(f"deployments.mlops.dev/{name}: the canary is version {canary}, not {version}")
    request: Obj = {"action": action, "version": int(canary), "requestedAt": requested_at}
    if action == "Promote":
        shadow = status.get("shadow") or {}
        if shadow.get("phase") == "Running" and shadow.get("version") == canary:
            raise SteerError(
                f"deployments.mlops.dev/{name}: version {canary} is in its shadow step, which ends by its verdict;"
                " use `promote --full` or `abort`"
            )
        request["step"] = int(status.get("step") or 0)
    if reason:
        request["reason"] = reason
    return Patch("deployments", "mldeploy", name, {"spec": {"rolloutRequest": request}})


def approve_patch(name: str, body: Obj) -> Patch:
    """spec.promote on a manual ModelVersion; refused in auto mode or when already set."""
    spec = body.get("spec") or {}
    if ((spec.get("promotion") or {}).get("mode") or "auto") != "manual":
        raise SteerError(f"modelversions.mlops.dev/{name} is in auto mode: its gates approve it, nothing to approve")
    if spec.get("promote") is True:
        raise SteerError(f"modelversions.mlops.dev/{name} is already approved (spec.promote: true)")
    return Patch("modelversions", "mv", name, {"spec": {"promote": True}})


def outcome(body: Obj, requested_at: str) -> tuple[str, str] | None:
    """(outcome, message) of our request once status.lastRequest records it; None until then."""
    handled = (body.get("status") or {}).get("lastRequest") or {}
    if handled.get("requestedAt") != requested_at:
        return None
    return str(handled.get("outcome")), str(handled.get("message") or "")


def _verb(action: str) -> str:
    return {"Promote": "promote", "PromoteFull": "promote", "Abort": "abort"}[action]


async def _run(args: argparse.Namespace, target: Target) -> int:
    namespace = target.namespace
    command = args.steer_command
    plural = "modelversions" if command == "approve" else "deployments"
    kube = Kube(target.connection)
    path = custom_path(GROUP, VERSION, plural, namespace, args.name)
    try:
        for attempt in range(WRITE_ATTEMPTS):
            body = await kube.get_or_none(path)
            if body is None:
                raise SteerError(f"{plural}.{GROUP}/{args.name} not found in namespace {namespace}")
            requested_at = now_rfc3339()
            patch = _patch_for(args, body, requested_at)
            # resourceVersion: the request names what status showed; if the object changed since, read again.
            precondition = {"metadata": {"resourceVersion": body["metadata"]["resourceVersion"]}, **patch.body}
            try:
                await kube.request(
                    "PATCH",
                    path,
                    body=precondition,
                    params={"fieldManager": FIELD_MANAGER},
                    content_type="application/merge-patch+json",
                )
            except ApiError as error:
                if error.status == 409 and attempt + 1 < WRITE_ATTEMPTS:
                    continue
                raise
            break
        print(f"{patch.short}/{args.name}: {json.dumps(patch.body)}")
        print(f"  (the same with kubectl: {patch.kubectl(namespace)})")
        if command in ("promote", "abort") and args.wait > 0:
            return await _await_outcome(kube, path, requested_at, args.wait)
        return OK
    except (SteerError, ApiError) as error:
        print(f"error: {error}", file=sys.stderr)
        return REFUSED
    finally:
        await kube.aclose()


def _patch_for(args: argparse.Namespace, body: Obj, requested_at: str) -> Patch:
    command = args.steer_command
    if command in ("pause", "resume"):
        return pause_patch(args.name, body, command == "pause")
    if command == "approve":
        return approve_patch(args.name, body)
    action = "Abort" if command == "abort" else ("PromoteFull" if args.full else "Promote")
    return request_patch(args.name, body, action, requested_at, args.version, args.reason)


async def _await_outcome(kube: Kube, path: str, requested_at: str, wait: float) -> int:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        result = outcome(await kube.get(path), requested_at)
        if result is not None:
            print(f"{result[0]}: {result[1]}")
            return OK if result[0] == "Applied" else REFUSED
        await asyncio.sleep(0.5)
    print(f"not handled within {wait:g}s: see status.lastRequest (is the operator running?)", file=sys.stderr)
    return UNCONFIRMED


def _command(args: argparse.Namespace, reader: Reader, out: TextIO) -> int:
    # The CLI resolved the connection and namespace as kubectl does (flags, $KUBECONFIG, context, in-cluster).
    return asyncio.run(_run(args, reader.target))


def add_commands(subparsers: Any) -> None:
    """Add promote, abort, pause, resume and approve to the top-level CLI's subparsers."""

    def add(name: str, help_text: str, kind: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = subparsers.add_parser(name, help=help_text, description=help_text)
        parser.add_argument("name", help=f"the {kind}")
        parser.set_defaults(run=_command, steer_command=name)
        return parser

    for name, help_text in (
        ("promote", "end the canary's current step now (spec.rolloutRequest Promote), or --full: make it stable"),
        ("abort", "roll the canary back to stable (spec.rolloutRequest Abort), as a failed analysis does"),
    ):
        parser = add(name, help_text, "deployments.mlops.dev object")
        if name == "promote":
            parser.add_argument("--full", action="store_true", help="skip every remaining step (PromoteFull)")
        parser.add_argument("--version", type=int, help="refuse unless the canary is this version")
        parser.add_argument("--reason", help="free text carried into the Event")
        parser.add_argument(
            "--wait", type=float, default=30.0, help="seconds to wait for the operator's outcome (0: do not wait)"
        )
    add("pause", "hold the rollout (spec.paused: true): no step advances, the step's clocks stop", "deployment")
    add("resume", "let a paused rollout go on (spec.paused: false)", "deployment")
    add("approve", "approve a manual ModelVersion (spec.promote: true)", "ModelVersion")


def main(argv: list[str] | None = None) -> int:
    """`python -m mlops_operator.ctl.steer ...`: the whole `kubectl mlops` CLI, which includes these commands."""
    from .cli import run  # the CLI imports this module to register the commands

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
