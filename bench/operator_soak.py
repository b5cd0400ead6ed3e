"""Operator memory over a long run (not a test): churn objects for minutes with short timers, sample RSS.

Usage: KUBECONFIG=.localcluster/kubeconfig python bench/operator_soak.py [--minutes 8] [--objects 40]

A day of an operator's life compressed: every cycle creates `--objects` mixed objects (Datasets,
TrainingRuns, ModelVersions, Deployments), waits until every status is written, deletes them and
waits until the store has let them go; the resync runs every 5 s instead of 10 min (a 10-minute
soak holds as many resyncs as 20 hours at the default). Per-object state (locks, timers, back-offs,
applied hashes) that is not pruned on delete shows up as RSS growing cycle after cycle.
A ResourceQuota of zero pods keeps the Job and ReplicaSet controllers from starting processes.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
import tracemalloc
import uuid
from pathlib import Path

from operator_scale import acknowledged, kubectl, manifests, rss_mib

RESYNC_SECONDS = 5
BENCH = Path(__file__).resolve().parent


def _signal_and_read(pid: int, signum: int, path: Path, timeout: float = 60) -> Path:
    """Ask the traced operator for a heap figure or a snapshot; the path once it is written."""
    path.unlink(missing_ok=True)
    os.kill(pid, signum)
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the traced operator wrote no {path.name} within {timeout:.0f}s")
        time.sleep(0.2)
    return path


def heap_growth(before: Path, after: Path, top: int = 15) -> list[str]:
    """The allocation sites whose live bytes grew most between two snapshots, one line each."""
    keep = [tracemalloc.Filter(False, tracemalloc.__file__)]
    old = tracemalloc.Snapshot.load(str(before)).filter_traces(keep)
    new = tracemalloc.Snapshot.load(str(after)).filter_traces(keep)
    lines = []
    for stat in new.compare_to(old, "traceback")[:top]:
        # Frames run oldest to newest: the allocation is the last, the first one outside the stdlib says why.
        newest_first = list(stat.traceback)[::-1]
        frames = [f"{Path(f.filename).name}:{f.lineno}" for f in newest_first if "/python3.11/" not in f.filename]
        origin = " < ".join(frames[:3]) or str(newest_first[0])
        lines.append(f"{stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+6d} blocks  {newest_first[0]}  [{origin}]")
    return lines


def slope_mib_per_hour(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MiB) samples, in MiB per hour of wall time."""
    xs, ys = [s for s, _ in samples], [m for _, m in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return 3600 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--objects", type=int, default=40)
    parser.add_argument("--trace", action="store_true", help="run the operator under tracemalloc: heap per cycle")
    parser.add_argument("--malloc-arena-max", type=int, help="MALLOC_ARENA_MAX for the operator (glibc arenas)")
    args = parser.parse_args()
    os.environ.setdefault("KUBECONFIG", str(Path(".localcluster/kubeconfig").resolve()))
    os.environ.setdefault("MLFLOW_TRACKING_URI", "http://10.244.0.1:15000")
    namespace = f"soak-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", namespace)
    kubectl("create", "quota", "no-pods", "--hard=pods=0", "-n", namespace)
    env = {**os.environ, "MLOPS_RESYNC_SECONDS": str(RESYNC_SECONDS), "MLOPS_LEADER_ELECTION": "false"}
    if args.malloc_arena_max:
        env["MALLOC_ARENA_MAX"] = str(args.malloc_arena_max)
    trace_dir = Path(f"/tmp/{namespace}-trace")
    if args.trace:
        trace_dir.mkdir()
        env["MLOPS_TRACE_DIR"] = str(trace_dir)
    entry = [str(BENCH / "traced_operator.py")] if args.trace else ["-m", "mlops_operator"]
    argv = [sys.executable, *entry, "run", "-n", namespace]
    argv += ["--liveness", "http://127.0.0.1:18083/healthz", "--metrics-port", "18093"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started, samples, heaps, cycles = time.monotonic(), [], [], 0
    baseline: Path | None = None
    try:
        deadline = started + 60 * args.minutes
        while time.monotonic() < deadline and cycles < 1000:
            kubectl("apply", "-n", namespace, "-f", "-", input_text=manifests(args.objects))
            limit = time.monotonic() + 300
            while acknowledged(namespace) < args.objects and time.monotonic() < limit:
                time.sleep(1)
            kubectl("delete", "datasets,trainingruns,modelversions,deployments.mlops.dev", "--all", "-n", namespace)
            time.sleep(RESYNC_SECONDS)  # one resync over the emptied namespace
            cycles += 1
            samples.append((time.monotonic() - started, rss_mib(proc.pid)[0]))
            heap = ""
            if args.trace:
                heaps.append(int(_signal_and_read(proc.pid, signal.SIGUSR1, trace_dir / "heap").read_text()) / 2**20)
                heap = f"  python heap={heaps[-1]:.2f} MiB"
                if cycles == 3:  # after the imports' and first objects' one-time allocations
                    baseline = _signal_and_read(proc.pid, signal.SIGUSR2, trace_dir / "snapshot-1")
            print(f"cycle {cycles:3d}  t={samples[-1][0]:6.0f}s  rss={samples[-1][1]:.1f} MiB{heap}", flush=True)
        _, peak = rss_mib(proc.pid)
        final = _signal_and_read(proc.pid, signal.SIGUSR2, trace_dir / "snapshot-2") if baseline else None
        holders = _signal_and_read(proc.pid, signal.SIGHUP, trace_dir / "holders").read_text() if args.trace else ""
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        kubectl("delete", "namespace", namespace, "--wait=false")
    third = max(1, len(samples) // 3)
    first, last = (statistics.median(m for _, m in part) for part in (samples[:third], samples[-third:]))
    resyncs = int((samples[-1][0] if samples else 0) / RESYNC_SECONDS)
    hours = resyncs * 600 / 3600
    print(f"cycles={cycles} objects/cycle={args.objects} created and deleted={cycles * args.objects}")
    print(f"  RSS median first third {first:.1f} MiB, last third {last:.1f} MiB (Δ {last - first:+.1f} MiB)")
    print(f"  peak RSS {peak:.0f} MiB; {resyncs} resyncs (≈ {hours:.0f} h at the default 10 min)")
    print(f"  slope {slope_mib_per_hour(samples):+.1f} MiB/hour of wall time")
    if heaps:
        third_h = max(1, len(heaps) // 3)
        h_first, h_last = (statistics.median(part) for part in (heaps[:third_h], heaps[-third_h:]))
        print(f"  Python heap (tracemalloc) median first third {h_first:.2f} MiB, last third {h_last:.2f} MiB")
    if holders:
        print("  what holds Kubernetes objects at the end (namespace empty):")
        for line in holders.splitlines():
            print(f"    {line}")
    if baseline and final:
        print("  heap growth from cycle 3 to the end, by allocation site:")
        for line in heap_growth(baseline, final):
            print(f"    {line}")


if __name__ == "__main__":
    main()
