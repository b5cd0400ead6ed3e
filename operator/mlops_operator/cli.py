"""`mlops-operator`: run the operator, generate CRDs, and manage the local cluster."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .localcluster.config import DEFAULT_STATE_DIR, MLFLOW_AUTH_MARKER, ClusterConfig


def _cmd_crds(args: argparse.Namespace) -> int:
    from .api.crdgen import crd_files, write_crds

    if args.check:
        stale = [
            name
            for name, text in crd_files().items()
            if not (args.output / name).exists() or (args.output / name).read_text() != text
        ]
        if stale:
            print(f"stale CRDs in {args.output}: {', '.join(stale)}; run `mlops-operator crds`", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date")
        return 0
    for path in write_crds(args.output):
        print(f"wrote {path}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from .controllers.main import run_operator

    if args.peering:
        print(
            "warning: --peering is ignored: replicas elect a leader through a Lease (MLOPS_LEADER_ELECTION)",
            file=sys.stderr,
        )
    run_operator(namespaces=args.namespace, liveness=args.liveness, metrics_port=args.metrics_port)
    return 0


def _cmd_cluster(args: argparse.Namespace) -> int:
    from .localcluster import cluster
    from .localcluster.logs import print_pod_logs

    if args.action == "up" and args.mlflow_auth:
        marker = args.state_dir.resolve() / MLFLOW_AUTH_MARKER
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    cfg = ClusterConfig.from_env(args.state_dir)
    try:
        if args.action == "up":
            print(f"Starting the local cluster in {cfg.state_dir}")
            seconds = cluster.up(cfg)
            print(
                f"Cluster ready in {seconds:.1f}s.\n  export KUBECONFIG={cfg.kubeconfig}\n"
                f"  API server {cfg.apiserver_url} (pods reach it at https://{cfg.bridge_ip}:{cfg.apiserver_port})"
            )
        elif args.action == "down":
            cluster.down(cfg, purge=args.purge)
        elif args.action == "status":
            states = cluster.status(cfg)
            for component, state in states.items():
                print(f"{component:<24} {state}")
            return 0 if all("healthy" in s and "unhealthy" not in s for s in states.values()) else 3
        elif args.action == "logs":
            return print_pod_logs(cfg, args.pod, args.namespace, args.container)
        elif args.action == "kubeconfig":
            print(cfg.kubeconfig)
    except cluster.ClusterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(ClusterConfig.from_env(args.state_dir), timeout=args.timeout)


def _cmd_traffic(args: argparse.Namespace) -> int:
    import asyncio

    from .traffic import parse_shifts, send_traffic

    try:
        shifts = parse_shifts(args.shift)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        report = asyncio.run(
            send_traffic(
                args.namespace,
                args.deployment,
                args.data,
                rate=args.rate,
                duration=args.duration,
                shifts=shifts,
                malformed=args.malformed,
                drop=set(args.drop),
                seed=args.seed,
                labels=args.labels,
            )
        )
    except ValueError as error:  # a column that is not in the data (--labels, --shift)
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0 if report.sent else 1


def _cmd_drift_replay(args: argparse.Namespace) -> int:
    from .driftreplay import read_inputs, replay

    frame = read_inputs(args.data, args.drop)
    for method in args.method or ["psi", "js", "ks"]:
        result = replay(
            frame,
            method,
            args.threshold,
            window_rows=args.window_rows,
            windows=args.windows,
            consecutive=args.consecutive,
            shift_std=args.shift_std,
        )
        print(result.summary())
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from .modelaccess import run as run_models

    if args.action == "adopt" and not args.namespace:
        build_parser().error("models adopt needs --namespace (the owner)")
    return run_models(args.tracking_uri, args.action, args.model, args.namespace, args.with_, args.transfer)


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="mlops-operator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the operator against the current kubeconfig")
    run.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        help="watch only this namespace (repeatable); default: all namespaces",
    )
    run.add_argument(
        "--peering",
        action="store_true",
        help="ignored (kept so old manifests still start); replicas elect a leader through a Lease instead",
    )
    run.add_argument("--liveness", default="http://0.0.0.0:8080/healthz", help="liveness probe endpoint URL")
    run.add_argument("--metrics-port", type=int, default=9090, help="port of the operator's /metrics (0: off)")
    run.set_defaults(func=_cmd_run)

    crds = sub.add_parser("crds", help="generate crds/*.yaml from the API models")
    crds.add_argument("--output", "-o", type=Path, default=Path("crds"))
    crds.add_argument("--check", action="store_true", help="fail if the files differ from the models")
    crds.set_defaults(func=_cmd_crds)

    cl = sub.add_parser("cluster", help="the local control plane (etcd, API server, controllers, node agent)")
    cl.add_argument("action", choices=["up", "down", "status", "logs", "kubeconfig"])
    cl.add_argument("pod", nargs="?", help="for logs: the pod name")
    cl.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    cl.add_argument("--namespace", "-n", default="default", help="for logs: the pod's namespace")
    cl.add_argument("--container", "-c", help="for logs: the container (default: all)")
    cl.add_argument("--purge", action="store_true", help="for down: also delete the state directory")
    cl.add_argument(
        "--mlflow-auth",
        action="store_true",
        help="for up: run MLflow with its basic-auth app (kept for this state directory until down --purge)",
    )
    cl.set_defaults(func=_cmd_cluster)

    tr = sub.add_parser("traffic", help="send prediction traffic to a deployments.mlops.dev object's pods")
    tr.add_argument("deployment", help="the deployments.mlops.dev name (its Service has the same name)")
    tr.add_argument("--namespace", "-n", default="default")
    tr.add_argument("--data", type=Path, required=True, help="CSV whose rows are sent (target columns dropped)")
    tr.add_argument("--drop", action="append", default=[], help="a column not to send, e.g. the target")
    tr.add_argument("--rate", type=float, default=20.0, help="requests per second")
    tr.add_argument("--duration", type=float, default=30.0, help="seconds")
    tr.add_argument("--shift", action="append", default=[], help="FEATURE=DELTA: add DELTA std devs to a feature")
    tr.add_argument("--malformed", type=float, default=0.0, help="fraction of malformed requests (0..1)")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument(
        "--labels",
        metavar="COLUMN",
        help="the CSV column of true labels: not sent as an input, but as feedback for each prediction's id",
    )
    tr.set_defaults(func=_cmd_traffic)

    dr = sub.add_parser("drift-replay", help="replay a CSV through the drift detector: false alarms and detection")
    dr.add_argument("--data", type=Path, required=True, help="CSV of the model's inputs (the training data)")
    dr.add_argument("--drop", action="append", default=[], help="a column that is not an input, e.g. the target")
    dr.add_argument("--method", action="append", choices=["psi", "js", "ks"], help="default: all three")
    dr.add_argument("--threshold", type=float, help="default: the method's default threshold")
    dr.add_argument("--window-rows", type=int, default=1000, help="rows per window (compare with minSamples)")
    dr.add_argument("--windows", type=int, default=200)
    dr.add_argument("--consecutive", type=int, default=2, help="consecutiveWindows")
    dr.add_argument("--shift-std", type=float, default=0.5, help="the mean shift to detect, in standard deviations")
    dr.set_defaults(func=_cmd_drift_replay)

    models = sub.add_parser("models", help="who owns a registered model and who may serve it (MLflow tags)")
    models.add_argument("action", choices=["show", "adopt", "share"])
    models.add_argument("model", help="the registered model name")
    models.add_argument("--namespace", "-n", help="for adopt: the namespace that becomes the owner")
    models.add_argument("--with", dest="with_", action="append", default=[], help="for share: a reader namespace")
    models.add_argument("--transfer", action="store_true", help="for adopt: take the model from its current owner")
    models.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI") or ClusterConfig().mlflow_url,
        help="MLflow (default: $MLFLOW_TRACKING_URI, else the local cluster's)",
    )
    models.set_defaults(func=_cmd_models)

    demo = sub.add_parser("demo", help="run the iris pipeline on the local cluster with a live progress table")
    demo.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    demo.add_argument("--timeout", type=float, default=600.0, help="seconds before the demo gives up")
    demo.set_defaults(func=_cmd_demo)

    # Listed for --help only: main() hands everything after `ctl` to the plugin's own parser unchanged.
    sub.add_parser("ctl", help="kubectl mlops (get, history, why, ...): the same code as the kubectl-mlops plugin")
    return parser


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["ctl"]:
        from .ctl.cli import main as ctl_main

        ctl_main(argv[1:], prog="mlops-operator ctl")
    args = build_parser().parse_args(argv)
    if args.command == "cluster" and args.action == "logs" and not args.pod:
        build_parser().error("cluster logs needs a POD name")
    sys.exit(args.func(args))
