"""`mlops-worker`: the trainer image's entrypoint (validate, train, trial, sample-data).

Job pods get their input from env (MLFLOW_TRACKING_URI, MLOPS_OBJECT, MLOPS_DATASET, MLOPS_JOB_NAME)
and report through MLflow. Exit codes: 0 done (valid or invalid data alike), 2 permanent error
(the Job fails at once), 1 transient error (retried). A failure's last stderr line is `error: <why>`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import __version__
from .errors import describe, exit_code


def parser() -> argparse.ArgumentParser:
    """The command line."""
    root = argparse.ArgumentParser(
        prog="mlops-worker", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    root.add_argument("--version", action="version", version=f"mlops-worker {__version__}")
    sub = root.add_subparsers(dest="command", required=True)
    sub.add_parser("validate", help="validate a Dataset source against its schema and profile it (env MLOPS_OBJECT)")
    sub.add_parser("train", help="train and register a model for a TrainingRun (env MLOPS_OBJECT, MLOPS_DATASET)")
    sub.add_parser("trial", help="evaluate this pod's share of a trial round (env MLOPS_TRIAL, JOB_COMPLETION_INDEX)")
    sample = sub.add_parser("sample-data", help="write a bundled data set (iris, diabetes) as CSV")
    sample.add_argument("dataset", choices=["iris", "diabetes"])
    sample.add_argument("--out", type=Path, required=True, help="CSV file to write")
    sample.add_argument(
        "--shift",
        action="append",
        default=[],
        metavar="FEATURE=DELTA_STD",
        help="add DELTA_STD standard deviations to a numeric feature (repeatable; simulates drift)",
    )
    return root


def dispatch(args: argparse.Namespace) -> int:
    """Run one parsed command; modules load lazily so --help stays fast."""
    if args.command == "validate":
        from .validate import run_validate

        return run_validate()
    if args.command == "train":
        from .train import run_train

        return run_train()
    if args.command == "trial":
        from .trials import run_trials

        return run_trials()
    from .sample_data import write_sample

    rows = write_sample(args.dataset, args.out, args.shift)
    print(f"wrote {rows} rows of {args.dataset} to {args.out}")
    return 0


def run(argv: list[str] | None = None) -> int:
    """Parse and run; every failure ends with one `error: <message>` line on stderr and its exit code."""
    args = parser().parse_args(argv)
    try:
        return dispatch(args)
    except Exception as error:
        sys.stdout.flush()
        print(f"error: {describe(error)}", file=sys.stderr, flush=True)
        return exit_code(error)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `mlops-worker` script."""
    sys.exit(run(argv))
