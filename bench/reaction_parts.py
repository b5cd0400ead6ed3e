"""Where a reaction's time goes (operator_scale.py's helper): the operator's own queue and pass time, read from its
metrics around each change, and the CPU the cluster's processes used meanwhile, read from /proc."""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass
from pathlib import Path

import httpx

# Sample names (prometheus_client filters a scrape by them): the queue and pass histograms' sums and counts.
QUEUE = "mlops_operator_queue_duration_seconds"
PASS = "mlops_operator_reconcile_duration_seconds"
SAMPLES = {"name[]": [f"{QUEUE}_sum", f"{QUEUE}_count", f"{PASS}_sum", f"{PASS}_count"]}
CLUSTER_PROCESSES = ("kube-apiserver", "etcd", "kube-controller-manager", "mlflow")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
KIND_OF = {"datasets": "Dataset", "trainingruns": "TrainingRun", "modelversions": "ModelVersion"}
KIND_OF["deployments"] = "Deployment"

Sums = dict[tuple[str, str, str], float]  # (sample, kind, queue or "") -> value


async def scrape(http: httpx.AsyncClient, url: str) -> Sums:
    """The queue and pass histograms' sums and counts, by kind (and queue)."""
    text = (await http.get(url, params=SAMPLES, timeout=5)).text
    sums: Sums = {}
    for line in text.splitlines():
        if line.startswith("#") or "{" not in line:
            continue
        name, rest = line.split("{", 1)
        labels, value = rest.rsplit("} ", 1)
        fields = dict(part.split("=", 1) for part in labels.split(",") if "=" in part)
        kind, queue = fields.get("kind", '""').strip('"'), fields.get("queue", '""').strip('"')
        sums[(name, kind, queue)] = float(value)
    return sums


@dataclass
class Parts:
    """One reaction, split: the spec write's round trip, the operator's queue and pass time, and the rest (watch
    delivery to the operator and back to the bench, and kopf's own handling)."""

    total: float
    write: float
    queue: float
    passes: float
    event_passes: int
    timer_passes: float  # timed passes of every kind while this reaction ran: what "idle" objects cost

    @property
    def rest(self) -> float:
        """What the operator's metrics do not account for."""
        return max(0.0, self.total - self.write - self.queue - self.passes)


def parts(plural: str, before: Sums, after: Sums, total: float, write: float) -> Parts:
    """Split one reaction from the metrics scraped before its change and 0.5 s after its status was seen. The queue
    time is the event passes' (the change's, then the echo of its status write, usually ms): an upper bound; the
    pass time is one pass of the kind, their mean (the kind's timed passes of idle objects are in it too)."""
    kind = KIND_OF[plural]

    def delta(sample: str, queue: str = "") -> float:
        return after.get((sample, kind, queue), 0.0) - before.get((sample, kind, queue), 0.0)

    event_passes = int(delta(f"{QUEUE}_count", "event"))
    pass_count = delta(f"{PASS}_count")
    mean_pass = delta(f"{PASS}_sum") / pass_count if pass_count else 0.0
    timers = sum(v - before.get(k, 0.0) for k, v in after.items() if k[0] == f"{QUEUE}_count" and k[2] == "timer")
    return Parts(total, write, delta(f"{QUEUE}_sum", "event"), mean_pass, event_passes, timers)


def summary(all_parts: list[Parts]) -> list[str]:
    """Median and p95 of each part, over the reactions."""

    def quantiles(values: list[float]) -> str:
        ordered = sorted(values)
        p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
        return f"p50 {statistics.median(ordered):.3f} s  p95 {p95:.3f} s"

    rows = [
        ("spec write (PATCH round trip)", [p.write for p in all_parts]),
        ("queue (event -> its pass starts; at most)", [p.queue for p in all_parts]),
        ("pass (reads, plan, status write)", [p.passes for p in all_parts]),
        ("rest (watch to the operator and back, kopf)", [p.rest for p in all_parts]),
    ]
    lines = [f"    {label:<45} {quantiles(values)}" for label, values in rows]
    timed, events = sum(p.timer_passes for p in all_parts), sum(p.event_passes for p in all_parts)
    lines.append(f"    timed passes of idle objects meanwhile: {timed:.0f} over {len(all_parts)} reactions")
    lines.append(f"    event passes of the changed objects' kinds meanwhile: {events}")
    return lines


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process and its children that are still running (MLflow's workers)."""
    total = 0.0
    for candidate in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{candidate}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def children(pid: int) -> list[int]:
    """Direct children of a process."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def cluster_pids(pids_dir: Path) -> dict[str, int]:
    """The local cluster's processes the operator leans on, by name, from its pid files."""
    found = {}
    for name in CLUSTER_PROCESSES:
        path = pids_dir / f"{name}.pid"
        if path.exists():
            found[name] = int(path.read_text().split()[0])
    return found


def cpu_shares(pids: dict[str, int], before: dict[str, float], after: dict[str, float], seconds: float) -> str:
    """Each process's CPU over an interval, as a share of one core."""
    return ", ".join(f"{name} {(after[name] - before[name]) / seconds:.0%}" for name in pids if name in before)
