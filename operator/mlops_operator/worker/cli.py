"""`mlops-worker`: the trainer image's entrypoint (validate, train)."""

from __future__ import annotations

import argparse
import sys

from .. import __version__

PLANNED = {
    "validate": "validate a Dataset source against its schema and profile it",
    "train": "train and register a model for a TrainingRun",
}


def main(argv: list[str] | None = None) -> None:
    """Parse the command; commands not shipped in this version exit 2 with a message saying so."""
    parser = argparse.ArgumentParser(prog="mlops-worker", description=__doc__)
    parser.add_argument("--version", action="version", version=f"mlops-worker {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in PLANNED.items():
        sub.add_parser(name, help=help_text)
    args = parser.parse_args(argv)
    print(f"mlops-worker {args.command}: not available in mlops-operator {__version__}", file=sys.stderr)
    sys.exit(2)
