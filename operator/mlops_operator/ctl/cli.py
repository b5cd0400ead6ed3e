"""`kubectl mlops`: see the ML loop's objects from the command line (also `mlops-operator ctl`).

kubectl runs any `kubectl-mlops` executable on PATH as `kubectl mlops`, passing the arguments after `mlops`
unchanged, so the plugin reads --kubeconfig, --context and -n itself, and $KUBECONFIG and the context's namespace as
kubectl does.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import httpx

from ..kubeapi import ApiError
from . import read, steer
from .kube import CtlError, Reader, resolve_target

# Each module adds its subcommands with `add_commands(subparsers) -> None`; a subcommand sets
# `run(args, reader, out) -> int` with set_defaults: reads (ctl/read.py: get, history, why) and the steering
# writes (ctl/steer.py: promote, abort, pause, resume, approve).
COMMAND_MODULES: tuple[Callable[[Any], None], ...] = (read.add_commands, steer.add_commands)


def build_parser(prog: str = "kubectl mlops") -> argparse.ArgumentParser:
    """The plugin's command line: global connection options, then one subcommand."""
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kubeconfig", help="the kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
    parser.add_argument("--context", help="the kubeconfig context (default: its current-context)")
    parser.add_argument("--namespace", "-n", help="the namespace (default: the kubeconfig context's, else default)")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_commands in COMMAND_MODULES:
        add_commands(subparsers)
    # -n and --kubeconfig may also follow the subcommand, as with kubectl (`kubectl mlops get -n demo`).
    for sub in subparsers.choices.values():
        sub.add_argument("--kubeconfig", dest="sub_kubeconfig", help=argparse.SUPPRESS)
        sub.add_argument("--context", dest="sub_context", help=argparse.SUPPRESS)
        sub.add_argument("--namespace", "-n", dest="sub_namespace", help="the namespace")
    return parser


def main(argv: list[str] | None = None, prog: str = "kubectl mlops") -> None:
    """Console-script entry point of `kubectl-mlops`."""
    sys.exit(run(argv, prog))


def run(argv: list[str] | None = None, prog: str = "kubectl mlops") -> int:
    """Parse, connect, run one command; errors a person can act on are one line on stderr and exit 1."""
    args = build_parser(prog).parse_args(argv)
    kubeconfig = args.sub_kubeconfig or args.kubeconfig
    namespace = args.sub_namespace or args.namespace
    context = args.sub_context or args.context
    try:
        reader = Reader.connect(resolve_target(kubeconfig, namespace, context))
        try:
            return int(args.run(args, reader, read.stdout()))
        finally:
            reader.close()
    except CtlError as error:
        print(f"error: {error}", file=sys.stderr)
    except ApiError as error:
        hint = " (are the mlops.dev CRDs installed?)" if error.status == 404 else ""
        print(f"error: the API server answered {error}{hint}", file=sys.stderr)
    except httpx.HTTPError as error:
        print(f"error: cannot reach the API server: {error}", file=sys.stderr)
    except BrokenPipeError:  # `kubectl mlops get | head`
        return 0
    except KeyboardInterrupt:  # Ctrl-C outside --watch (which handles it itself): no traceback
        return 130
    return 1
