"""Operator at scale (not a test): N mixed objects, the API requests the operator makes, time, memory, reaction.

Usage: .venv/bin/python bench/operator_scale.py [--objects 1000] [--runs 1] [--qps 20] [--reactions 40]

Creates N objects (copies of `examples/iris/`, a quarter of each kind) in a fresh namespace, starts
`mlops-operator run` for it under the local cluster's audited identity, and reports:

1. the time until every object carries `status.observedGeneration`, against (requests needed / client
   rate) x 1.2, and the requests made until then and until the operator went quiet, per object and by
   verb and resource, from the API server's audit log (so kopf's own LISTs and WATCHes count too);
2. RSS settled and at peak;
3. reaction time: one object's spec changed while the others sit idle, until its status reflects it;
4. a restart over the converged objects: time until ready (every object passed once) and the writes
   it made, which must be none (the bench fails otherwise).

A ResourceQuota of zero pods keeps the Job and ReplicaSet controllers from starting thousands of
Python processes: the operator does all its real work (Jobs, serving Deployments, Services, MLflow
lookups), the pods just never start.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from mlops_operator.kubeapi import Kube, connection_from_kubeconfig
from mlops_operator.localcluster.audit import AuditLog, writes
from mlops_operator.localcluster.config import ClusterConfig
from reaction_parts import cluster_pids, cpu_seconds, cpu_shares, parts, scrape, summary

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "iris"
GROUP_PATH = "/apis/mlops.dev/v1alpha1"
KINDS = {  # plural -> (example file, a spec change that bumps the generation and needs a status answer)
    "datasets": ("dataset.yaml", lambda i: {"spec": {"validation": {"minRows": 100 + i}}}),
    "trainingruns": ("trainingrun.yaml", lambda i: {"spec": {"backoffLimit": 2 + i % 3}}),
    "modelversions": ("modelversion.yaml", lambda i: {"spec": {"promote": i % 2 == 0}}),
    "deployments": ("deployment.yaml", lambda i: {"spec": {"replicas": 1 + i % 4}}),
}
OPERATOR_PORTS = {"liveness": 18082, "metrics": 18092}
METRICS_URL = f"http://127.0.0.1:{OPERATOR_PORTS['metrics']}/metrics"
# Only the one counter: a whole scrape of 2,500 Deployments' status gauges is 3.5 MB and 0.5 s of the operator's
# CPU, so polling it every 0.5 s during the restart took the CPU it was measuring.
RECONCILES_ONLY = {"name[]": "mlops_operator_reconciles_total"}
Obj = dict[str, Any]


def manifests(count: int, model: str = "iris-classifier") -> list[tuple[str, Obj]]:
    """(plural, object) for `count` objects, the four kinds in turn, each named after its index, all on one
    registered model (one of the bench's own: a model another namespace registered is refused, not served)."""
    templates = [
        (plural, yaml.safe_load((EXAMPLES / file).read_text().replace("iris-classifier", model)))
        for plural, (file, _) in KINDS.items()
    ]
    objects = []
    for i in range(count):
        plural, template = templates[i % len(templates)]
        obj = json.loads(json.dumps(template))
        obj["metadata"] = {"name": f"{template['metadata']['name']}-{i}"}
        objects.append((plural, obj))
    return objects


@dataclass
class Acknowledgements:
    """Every object's generation and observedGeneration as a watch reports them, and when each was first seen."""

    state: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    first_ack: dict[tuple[str, str], float] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def record(self, plural: str, obj: Obj) -> None:
        """Note one object's current generation and observedGeneration."""
        key = (plural, obj["metadata"]["name"])
        observed = int((obj.get("status") or {}).get("observedGeneration") or 0)
        self.state[key] = (int(obj["metadata"].get("generation") or 1), observed)
        if observed and key not in self.first_ack:
            self.first_ack[key] = time.monotonic()
        self.changed.set()

    async def wait_for(self, predicate: Any, timeout: float) -> bool:
        """Wait until predicate() holds (checked after every watch event) or the timeout passes."""
        deadline = time.monotonic() + timeout
        while not predicate():
            self.changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(remaining, 5.0))
        return True


async def watch_kind(http: httpx.AsyncClient, namespace: str, plural: str, acks: Acknowledgements) -> None:
    """Keep `acks` current for one kind: a LIST, then a WATCH from its resourceVersion, re-listed on expiry."""
    path = f"{GROUP_PATH}/namespaces/{namespace}/{plural}"
    while True:
        listing = (await http.get(path)).raise_for_status().json()
        for obj in listing["items"]:
            acks.record(plural, obj)
        params = {"watch": "1", "resourceVersion": listing["metadata"]["resourceVersion"], "timeoutSeconds": "1800"}
        async with http.stream("GET", path, params=params, timeout=None) as stream:
            async for line in stream.aiter_lines():
                event = json.loads(line)
                if event["type"] == "ERROR":
                    break
                if event["type"] in ("ADDED", "MODIFIED"):
                    acks.record(plural, event["object"])


async def wait_quiet(audit: AuditLog, quiet: float, timeout: float) -> float:
    """Wait until no request was logged for `quiet` seconds; returns when the last one came (monotonic)."""
    deadline, last_size, last_change = time.monotonic() + timeout, -1, time.monotonic()
    while time.monotonic() < deadline:
        size = audit.size()
        if size != last_size:
            last_size, last_change = size, time.monotonic()
        elif time.monotonic() - last_change >= quiet:
            return last_change
        await asyncio.sleep(0.5)
    return last_change


async def wait_for_earlier_runs(admin: Kube, timeout: float = 3600) -> None:
    """Wait until no namespace is being deleted (an earlier run's): the namespace controller deleting 25,000
    objects beside a run slowed the API server and every figure of the run (reaction p95 0.10 s on a freshly
    started cluster, 2.82 s after four runs)."""
    deadline, began = time.monotonic() + timeout, time.monotonic()
    while time.monotonic() < deadline:
        listing = (await admin.get("/api/v1/namespaces"))["items"]
        earlier = [n["metadata"]["name"] for n in listing if (n.get("status") or {}).get("phase") == "Terminating"]
        if not earlier:
            if time.monotonic() - began > 1:
                print(f"waited {time.monotonic() - began:.0f} s for namespaces being deleted", file=sys.stderr)
            return
        await asyncio.sleep(5)
    raise SystemExit(f"namespaces still being deleted after {timeout:.0f} s: {', '.join(earlier)}")


def rss_mib(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def start_operator(cfg: ClusterConfig, namespace: str, qps: float, heap: Path | None = None) -> subprocess.Popen[bytes]:
    """`mlops-operator run` for one namespace, as the audited identity, without leader election (tracing its
    allocations if `heap` names the file its SIGUSR1 dump goes to)."""
    env = {
        **os.environ,
        **({"MLOPS_HEAP_PROFILE": str(heap)} if heap else {}),
        "KUBECONFIG": str(cfg.audited_kubeconfig),
        "MLFLOW_TRACKING_URI": cfg.mlflow_url,
        "MLOPS_API_QPS": str(qps),
        "MLOPS_LEADER_ELECTION": "false",
    }
    log = (cfg.logs_dir / f"bench-operator-{namespace}.log").open("ab")
    argv = [sys.executable, "-m", "mlops_operator", "run", "-n", namespace]
    argv += ["--liveness", f"http://127.0.0.1:{OPERATOR_PORTS['liveness']}/healthz"]
    argv += ["--metrics-port", str(OPERATOR_PORTS["metrics"])]
    return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)


async def dump_heap(proc: subprocess.Popen[bytes], path: Path) -> None:
    """Ask the operator for its allocation sites (SIGUSR1, controllers/memprofile.py) and wait for the file."""
    path.unlink(missing_ok=True)
    proc.send_signal(signal.SIGUSR1)
    for _ in range(240):
        if path.exists() and path.stat().st_size:
            await asyncio.sleep(1)  # written in one call; give it a moment to be whole
            print(f"heap profile of the settled operator: {path}", file=sys.stderr)
            return
        await asyncio.sleep(0.5)
    raise SystemExit(f"the operator wrote no heap profile to {path} within 2 minutes")


def profile_restart(pid: int, path: Path) -> subprocess.Popen[bytes]:
    """py-spy samples the restarted operator for its first 15 s (raw flamegraph lines: stack count)."""
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        raise SystemExit(f"--profile-restart needs py-spy: {sys.executable} -m pip install py-spy")
    argv = [str(spy), "record", "--rate", "100", "--duration", "15", "--format", "raw", "--output", str(path)]
    return subprocess.Popen([*argv, "--pid", str(pid)], stdout=subprocess.DEVNULL)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 60 s."""
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def require_free_ports() -> None:
    """Stop before starting if another operator (a bench left running) holds the bench's ports."""
    for port in OPERATOR_PORTS.values():
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                raise SystemExit(f"port {port} is in use: is an operator from an earlier bench still running?")


async def reconciles(http: httpx.AsyncClient) -> float:
    """Reconcile passes the operator counted so far (all kinds); 0 before it serves metrics."""
    try:
        text = (await http.get(METRICS_URL, params=RECONCILES_ONLY, timeout=2)).text
    except httpx.HTTPError:
        return 0.0
    return sum(by_kind(text, "mlops_operator_reconciles_total").values())


def by_kind(metrics_text: str, counter: str) -> dict[str, float]:
    """A counter's values by its `kind` label, from Prometheus text."""
    values = {}
    for line in metrics_text.splitlines():
        if line.startswith(counter + "{"):
            labels, value = line.rsplit(" ", 1)
            values[labels.split('kind="', 1)[1].split('"', 1)[0]] = float(value)
    return values


async def passes(http: httpx.AsyncClient) -> dict[str, float]:
    """Reconcile passes so far, by kind."""
    text = (await http.get(METRICS_URL, params=RECONCILES_ONLY, timeout=5)).text
    return by_kind(text, "mlops_operator_reconciles_total")


def per_object(counts: Counter[tuple[str, str]], objects: int) -> str:
    """Requests per object, excluding the per-kind LISTs and WATCHes (constant, not per object)."""
    return f"{sum(n for (verb, _), n in counts.items() if verb not in ('list', 'watch')) / objects:.2f}"


def breakdown(counts: Counter[tuple[str, str]]) -> str:
    """One line per (verb, resource), most first."""
    return "\n".join(f"      {n:>7}  {verb:<7} {resource}" for (verb, resource), n in counts.most_common())


async def statuses(admin: Kube, namespace: str) -> dict[str, Obj]:
    """Every bench object's status, by plural/name."""
    found = {}
    for plural in KINDS:
        listing = await admin.get(f"{GROUP_PATH}/namespaces/{namespace}/{plural}")
        found.update({f"{plural}/{o['metadata']['name']}": o.get("status") or {} for o in listing["items"]})
    return found


def changed_statuses(before: dict[str, Obj], after: dict[str, Obj]) -> list[tuple[str, dict[str, Any]]]:
    """(object, {field: [before, after]}) for every status that differs, top-level fields only."""
    changes = []
    for key in sorted(before.keys() & after.keys()):
        old, new = before[key], after[key]
        fields = {f: [old.get(f), new.get(f)] for f in sorted(old.keys() | new.keys()) if old.get(f) != new.get(f)}
        if fields:
            changes.append((key, fields))
    return changes


async def create_all(http: httpx.AsyncClient, namespace: str, objects: list[tuple[str, Obj]]) -> None:
    """POST every object, 16 at a time (the bench's own client: not audited, not rate limited)."""
    gate = asyncio.Semaphore(16)

    async def one(plural: str, obj: Obj) -> None:
        async with gate:
            (await http.post(f"{GROUP_PATH}/namespaces/{namespace}/{plural}", json=obj)).raise_for_status()

    await asyncio.gather(*(one(plural, obj) for plural, obj in objects))


async def one_run(
    cfg: ClusterConfig,
    count: int,
    qps: float,
    reactions: int,
    profile: Path | None = None,
    heap: Path | None = None,
    keep: bool = False,
) -> dict[str, Any]:
    conn = connection_from_kubeconfig(cfg.kubeconfig)
    admin = Kube(conn, qps=1000, burst=1000)
    token = {"Authorization": f"Bearer {conn.token}"} if conn.token else {}
    http = httpx.AsyncClient(base_url=conn.server, verify=conn.ssl_context(), headers=token, timeout=60)
    local = httpx.AsyncClient()
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    await wait_for_earlier_runs(admin)
    audit = AuditLog(cfg.audit_log)
    await admin.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    quota = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "no-pods"}}
    quota["spec"] = {"hard": {"pods": "0"}}
    await admin.create(f"/api/v1/namespaces/{namespace}/resourcequotas", quota)
    acks = Acknowledgements()
    watchers = [asyncio.create_task(watch_kind(http, namespace, plural, acks)) for plural in KINDS]
    proc: subprocess.Popen[bytes] | None = None
    result: dict[str, Any] = {"objects": count, "qps": qps}
    try:
        await create_all(http, namespace, manifests(count, model=namespace))
        await acks.wait_for(lambda: len(acks.state) >= count, 120)
        audit.mark()
        started = time.monotonic()
        proc = start_operator(cfg, namespace, qps, heap)
        if not await acks.wait_for(lambda: len(acks.first_ack) >= count, 3600):
            raise SystemExit(f"only {len(acks.first_ack)} of {count} objects were acknowledged in an hour")
        result["ack_seconds"] = max(acks.first_ack.values()) - started
        result["ack_requests"] = audit.since_mark()
        last = await wait_quiet(audit, quiet=15, timeout=1800)
        result["settle_seconds"] = last - started
        result["settle_requests"] = audit.since_mark()
        result["rss_settled"], result["rss_peak"] = rss_mib(proc.pid)
        if heap is not None:
            await dump_heap(proc, heap)
        result["passes"] = await passes(local)

        delays, slowest, split = [], [], []
        pids = {"operator": proc.pid, **cluster_pids(cfg.pids_dir)}
        cpu_before, reactions_began = {n: cpu_seconds(p) for n, p in pids.items()}, time.monotonic()
        for i in range(reactions):  # one object at a time, the four kinds in turn, while the rest sit idle
            plural = list(KINDS)[i % len(KINDS)]
            index = (i * 4 + list(KINDS).index(plural)) % count
            name = manifests(index + 1, model=namespace)[index][1]["metadata"]["name"]
            metrics_before = await scrape(local, METRICS_URL)
            changed_at = time.monotonic()
            path = f"{GROUP_PATH}/namespaces/{namespace}/{plural}/{name}"
            patched = await admin.merge_patch(path, KINDS[plural][1](i))
            written = time.monotonic() - changed_at
            generation = int(patched["metadata"]["generation"])
            if not await acks.wait_for(lambda key=(plural, name), g=generation: acks.state[key][1] >= g, 30):
                raise SystemExit(f"{plural}/{name} generation {generation} was not reflected in status within 30 s")
            delays.append(time.monotonic() - changed_at)
            slowest.append((delays[-1], plural))
            await asyncio.sleep(0.5)  # the pass is observed when it ends, after the status write the bench saw
            split.append(parts(plural, metrics_before, await scrape(local, METRICS_URL), delays[-1], written))
        cpu_after = {n: cpu_seconds(p) for n, p in pids.items()}
        result["reaction_cpu"] = cpu_shares(pids, cpu_before, cpu_after, time.monotonic() - reactions_began)
        result["reactions"] = delays
        result["reaction_parts"] = split
        result["slowest_reactions"] = sorted(slowest, reverse=True)[:3]
        await wait_quiet(audit, quiet=10, timeout=600)

        before = await statuses(admin, namespace)
        stop(proc)
        audit.mark()
        restarted = time.monotonic()
        proc = start_operator(cfg, namespace, qps)
        spy = profile_restart(proc.pid, profile) if profile else None
        deadline = restarted + 600
        while await reconciles(local) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.5)  # each scrape costs the operator a little CPU
        result["restart_ready_seconds"] = time.monotonic() - restarted
        if spy is not None:
            spy.wait()
        await wait_quiet(audit, quiet=15, timeout=600)
        result["restart_requests"] = audit.since_mark()
        result["restart_changes"] = changed_statuses(before, await statuses(admin, namespace))
        result["rss_restart"], result["rss_restart_peak"] = rss_mib(proc.pid)
    finally:
        if proc is not None:
            stop(proc)
        for watcher in watchers:
            watcher.cancel()
        if keep:
            print(f"kept namespace {namespace}", file=sys.stderr)
        with contextlib.suppress(Exception):
            if not keep:
                await admin.delete(f"/api/v1/namespaces/{namespace}")
        await admin.aclose()
        await http.aclose()
        await local.aclose()
    return result


def report(results: list[dict[str, Any]]) -> int:
    """Print medians over the runs (the breakdowns of the median run) and return the exit status."""
    median = statistics.median
    first = sorted(results, key=lambda r: r["ack_seconds"])[len(results) // 2]
    count, qps = first["objects"], first["qps"]
    ack_requests = sum(n for (verb, _), n in first["ack_requests"].items() if verb != "watch")
    budget = ack_requests / qps * 1.2
    reactions = sorted(d for r in results for d in r["reactions"])
    written = sum(sum(writes(r["restart_requests"]).values()) for r in results)
    print(f"objects={count} runs={len(results)} qps={qps} (medians)")
    ack = median(r["ack_seconds"] for r in results)
    print(
        f"  every status written: {ack:.1f} s   target ({ack_requests} requests / {qps:g} per s) x 1.2 = {budget:.1f} s"
    )
    quarter = count / len(KINDS)
    print(
        "  passes per object until settled: " + ", ".join(f"{k} {n / quarter:.1f}" for k, n in first["passes"].items())
    )
    print(f"  settled (no request for 15 s) after {median(r['settle_seconds'] for r in results):.1f} s")
    print(f"  requests per object until every status was written: {per_object(first['ack_requests'], count)}")
    print(breakdown(first["ack_requests"]))
    print(f"  requests per object until settled (children included): {per_object(first['settle_requests'], count)}")
    print(breakdown(first["settle_requests"]))
    print(
        f"  RSS settled {median(r['rss_settled'] for r in results):.0f} MiB, "
        f"peak {median(max(r['rss_peak'], r['rss_restart_peak']) for r in results):.0f} MiB (target <= 512 MiB)"
    )
    if reactions:
        p95 = reactions[min(len(reactions) - 1, int(0.95 * len(reactions)))]
        p50 = median(reactions)
        print(f"  reaction (spec changed -> status): p50 {p50:.2f} s  p95 {p95:.2f} s  ({len(reactions)} changes)")
        slowest = ", ".join(f"{plural} {delay:.2f} s" for r in results for delay, plural in r["slowest_reactions"])
        print(f"  slowest reactions: {slowest}")
        print("  where the reactions' time went (from the operator's queue and pass histograms):")
        print("\n".join(summary([p for r in results for p in r["reaction_parts"]])))
        print("  CPU while the reactions ran (share of one core): " + "; ".join(r["reaction_cpu"] for r in results))
    print(f"  restart: ready (every object passed once) in {median(r['restart_ready_seconds'] for r in results):.1f} s")
    print(f"  restart requests (writes must be 0: {written}):")
    print(breakdown(first["restart_requests"]))
    changes = first["restart_changes"]
    if changes:
        print(f"  statuses the restart changed: {len(changes)}; the first ones, field by field:")
        for key, fields in changes[:5]:
            print(f"    {key}: {json.dumps(fields)[:600]}")
    return 1 if written else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--qps", type=float, default=20.0, help="the operator's MLOPS_API_QPS")
    parser.add_argument("--reactions", type=int, default=40, help="spec changes timed one at a time")
    parser.add_argument("--state-dir", type=Path, default=Path(".localcluster"))
    parser.add_argument("--profile-restart", type=Path, help="py-spy the restart's first 15 s into this file")
    parser.add_argument("--keep", action="store_true", help="leave the bench namespace (delete it yourself)")
    parser.add_argument(
        "--heap-profile", type=Path, help="trace the operator's allocations; once settled, write the top sites here"
    )
    args = parser.parse_args()
    cfg = ClusterConfig.from_env(args.state_dir.resolve())
    if not cfg.audited_kubeconfig.exists():
        raise SystemExit(f"no {cfg.audited_kubeconfig}: run `mlops-operator cluster up --state-dir {args.state_dir}`")
    require_free_ports()
    results = [
        asyncio.run(
            one_run(cfg, args.objects, args.qps, args.reactions, args.profile_restart, args.heap_profile, args.keep)
        )
        for _ in range(args.runs)
    ]
    raise SystemExit(report(results))


if __name__ == "__main__":
    main()
