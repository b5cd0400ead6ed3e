"""Random SIGKILLs of the operator through the whole loop, on the real local cluster.

The loop: a Dataset and its validation Job, a TrainingRun and its training Job, the ModelVersion
through its gates, the first version served by a Deployment (alias `production`), then a second
TrainingRun whose version passes its gates and goes through a canary (50 %, 100 %) to the alias.
Meanwhile the operator is SIGKILLed at random moments (no cleanup handlers run, as in an OOM kill or
a node failure) and started again each time, at least KILLS times, until the canary has completed.
Most kills come a random while after the operator answers /healthz (it was working); some come at a
random moment of its start-up (imports, startup handlers, taking the leader Lease).

Afterwards nothing may exist twice: one Job per TrainingRun (and one for the Dataset), one
ModelVersion per registered version, exactly the registered versions 1 and 2 in MLflow, exactly the
two TrainingRuns applied, each canary step started once; and the last restarted operator must bring
everything to the final state within CONVERGENCE_LIMIT seconds.

The kill schedule comes from a seeded RNG; the seed is printed, and MLOPS_FAULT_SEED=<seed> replays
the same schedule (the moments relative to the loop still depend on how fast the machine is).
"""

from __future__ import annotations

import json
import os
import random
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fixtures.cluster import Kube, OperatorProcess, wait_for
from tests.fixtures.faults import (
    events_about,
    mlflow_alias,
    mlflow_registered_versions,
    ready_pods,
    reasons,
    serving_deployment,
)
from tests.integration.test_training import iris_dataset, sample_data, training_run

pytestmark = pytest.mark.cluster

Obj = dict[str, Any]
KILLS = 25
MAX_KILLS = 80  # a bound, should the loop crawl: kills continue only until the canary completed
DURING_STARTUP = 0.3  # the share of kills at a random moment of the start-up (imports, startup handlers, Lease)
UPTIME_SECONDS = (0.3, 3.0)  # otherwise: how long the operator works (from its /healthz answering) before the kill
DOWNTIME_SECONDS = (0.1, 1.0)  # how long it stays dead
READY_TIMEOUT_SECONDS = 60.0
LOOP_BUDGET_SECONDS = 330.0
CONVERGENCE_LIMIT = 60.0
SETTLE_SECONDS = 10.0
GATES = "[{metric: accuracy, min: 0.9}]"
KINDS = "jobs.batch,datasets.mlops.dev,trainingruns.mlops.dev,modelversions.mlops.dev,deployments.mlops.dev"


@dataclass
class Loop:
    """What the namespace showed over the whole test: every object ever seen (by uid), the stage, the steps."""

    kube: Kube
    namespace: str
    model: str
    stage: str = "validate"
    jobs: dict[str, Obj] = field(default_factory=dict)
    modelversions: dict[str, str] = field(default_factory=dict)
    trainingruns: dict[str, str] = field(default_factory=dict)
    steps: dict[int, set[str]] = field(default_factory=dict)
    second_version: int | None = None
    completed_seen: bool = False  # the second version became stable (the canary completed)
    polls: int = 0

    def poll(self) -> bool:
        """Look once; True when the loop is done (the second version serves everywhere and holds the alias)."""
        result = self.kube.run("get", KINDS, "-n", self.namespace, "-o", "json", check=False, timeout=60)
        if result.returncode != 0:
            return False
        self.polls += 1
        objs: dict[str, list[Obj]] = {}
        for item in json.loads(result.stdout)["items"]:
            objs.setdefault(item["kind"], []).append(item)
        for job in objs.get("Job", []):
            owner = (job["metadata"].get("ownerReferences") or [{}])[0]
            self.jobs.setdefault(
                job["metadata"]["uid"],
                {"name": job["metadata"]["name"], "owner_kind": owner.get("kind"), "owner_uid": owner.get("uid")},
            )
        for mv in objs.get("ModelVersion", []):
            self.modelversions.setdefault(mv["metadata"]["uid"], mv["metadata"]["name"])
        for run in objs.get("TrainingRun", []):
            self.trainingruns.setdefault(run["metadata"]["uid"], run["metadata"]["name"])
        self.stage = self._stage(objs)
        return self.stage == "done" and self._serving_everywhere()

    def _stage(self, objs: dict[str, list[Obj]]) -> str:
        def status(kind: str, name: str) -> Obj:
            found = next((o for o in objs.get(kind, []) if o["metadata"]["name"] == name), None)
            return (found or {}).get("status") or {}

        if status("Dataset", "iris").get("phase") != "Ready":
            return "validate"
        if status("TrainingRun", "train-1").get("phase") != "Succeeded":
            return "train-1"
        deployment = status("Deployment", "iris")
        first_mv = status("ModelVersion", status("TrainingRun", "train-1").get("modelVersion", ""))
        second_run = status("TrainingRun", "train-2")
        if not second_run and (deployment.get("stableVersion") != 1 or first_mv.get("phase") != "Promoted"):
            return "serve-1"
        if second_run.get("phase") != "Succeeded":
            return "train-2"
        second_mv = next(
            (o for o in objs.get("ModelVersion", []) if o["metadata"]["name"] == second_run.get("modelVersion")), None
        )
        if second_mv is None:
            return "train-2"
        self.second_version = int(second_mv["spec"]["version"])
        if deployment.get("canaryVersion") == self.second_version:
            if deployment.get("stepStartedAt"):
                self.steps.setdefault(int(deployment.get("step") or 0), set()).add(deployment["stepStartedAt"])
            return "canary"
        if deployment.get("stableVersion") != self.second_version:
            return "gates-2"
        self.completed_seen = True
        if deployment.get("aliasMove") or (second_mv.get("status") or {}).get("phase") != "Promoted":
            return "alias-2"
        if deployment.get("phase") != "Healthy":
            return "rollout-2"
        return "done"

    def _serving_everywhere(self) -> bool:
        pods = ready_pods(self.kube, self.namespace)
        return (
            len(pods) == 2
            and {p.version for p in pods} == {self.second_version}
            and mlflow_alias(self.kube, self.model) == self.second_version
        )


@dataclass
class Kill:
    at: float  # seconds since the test applied the manifests
    stage: str
    moment: str  # "startup" or "working"
    crashed: bool  # the process had exited on its own before the kill
    wall: str = ""  # UTC time of day, to read beside Event times


class Killer(threading.Thread):
    """SIGKILLs the operator at random moments and starts it again, until told to stop or done."""

    def __init__(self, op: OperatorProcess, rng: random.Random, loop: Loop, began: float) -> None:
        super().__init__(name="operator-killer", daemon=True)
        self.op, self.rng, self.loop, self.began = op, rng, loop, began
        self.halt = threading.Event()
        self.kills: list[Kill] = []
        self.startups: list[float] = []
        self.last_restart: float = time.monotonic()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.halt.is_set() and len(self.kills) < MAX_KILLS:
                if len(self.kills) >= KILLS and self.loop.completed_seen:
                    return
                if self.rng.random() < DURING_STARTUP:
                    # Somewhere in the start-up, as long as start-ups take on this machine right now.
                    startup = statistics.median(self.startups) if self.startups else 3.0
                    wait = self.rng.uniform(0.1, 1.0) * startup - (time.monotonic() - self.last_restart)
                    moment = "startup"
                else:
                    self.startups.append(self._wait_ready())
                    wait, moment = self.rng.uniform(*UPTIME_SECONDS), "working"
                if self.halt.wait(max(0.0, wait)):
                    return
                crashed = not self.op.running()
                self.op.kill()
                self.kills.append(
                    Kill(
                        time.monotonic() - self.began,
                        self.loop.stage,
                        moment,
                        crashed,
                        time.strftime("%H:%M:%S", time.gmtime()),
                    )
                )
                time.sleep(self.rng.uniform(*DOWNTIME_SECONDS))
                self.op.start()
                self.last_restart = time.monotonic()
        except BaseException as error:  # reported by the test; the thread must not die silently
            self.error = error

    def _wait_ready(self) -> float:
        """Seconds from the last start until the operator's /healthz answers (bounded)."""
        deadline = self.last_restart + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline and not self.halt.is_set() and self.op.running():
            try:
                if httpx.get(self.op.healthz, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        return time.monotonic() - self.last_restart


# Alone: under 4 parallel workers (load ~13 on 2 cores) it twice saw the canary cancelled and restarted once
# (CanaryStarted x2, CanaryCancelled x1) — a race after a restart under load, still open (issue 11 note).
@pytest.mark.alone
@pytest.mark.timeout(480)
def test_random_sigkills_through_the_whole_loop_duplicate_nothing_and_converge(
    crds_installed: Kube, namespace: str, tmp_path: Path
) -> None:
    kube, model = crds_installed, f"kills-{namespace}"
    seed = int(os.environ.get("MLOPS_FAULT_SEED") or time.time_ns() % 1_000_000)
    print(f"\nkill schedule seed {seed} (MLOPS_FAULT_SEED={seed} replays it)")
    data = sample_data("iris", tmp_path / "iris.csv")
    small = "{n_estimators: 10, max_depth: 3, random_state: %d}"
    first = iris_dataset(f"file://{data}") + "---\n" + training_run("train-1", model, params=small % 0, gates=GATES)
    deployment = serving_deployment(model, [{"weight": 50, "pause": "5s"}, {"weight": 100, "pause": "5s"}])
    second = training_run("train-2", model, params=small % 1, gates=GATES)

    op = OperatorProcess(kube, namespace, tmp_path / "operator.log").start()
    loop = Loop(kube, namespace, model)
    began = time.monotonic()
    killer = Killer(op, random.Random(seed), loop, began)
    converged_at: float | None = None
    try:
        kube.apply(first + "---\n" + deployment, namespace)
        killer.start()
        second_applied = False
        deadline = began + LOOP_BUDGET_SECONDS
        while time.monotonic() < deadline:
            done = loop.poll()
            if not second_applied and loop.stage == "train-2":
                kube.apply(second, namespace)
                second_applied = True
                print(f"[{time.monotonic() - began:5.1f}s] version 1 serves; applied TrainingRun train-2")
            if done and not killer.is_alive():
                converged_at = time.monotonic()
                break
            time.sleep(1.0)
        killer.halt.set()
        killer.join(timeout=60)
        assert killer.error is None, f"the killer failed: {killer.error!r}"
        assert op.running(), f"the operator is not running after the last restart:\n{op.log_tail(120)}"
        kills = killer.kills
        by_stage = Counter(k.stage for k in kills)
        print(f"kills: {len(kills)} by stage {dict(by_stage)}, by moment {dict(Counter(k.moment for k in kills))}")
        if killer.startups:
            print(f"operator start -> /healthz: median {statistics.median(killer.startups):.1f}s")
        print("kill moments (s): " + ", ".join(f"{k.at:.1f}/{k.stage}" for k in kills))
        assert converged_at is not None, (
            f"the loop did not converge within {LOOP_BUDGET_SECONDS:.0f}s (stage {loop.stage} after "
            f"{len(kills)} kills):\n{kube.run('get', 'mlops,jobs,pods', '-n', namespace, check=False).stdout}\n"
            f"{op.log_tail(120)}"
        )
        convergence = converged_at - killer.last_restart
        print(
            f"loop done {converged_at - began:.1f}s after apply; "
            f"last kill -> converged {convergence:.1f}s (limit {CONVERGENCE_LIMIT:.0f}s)"
        )
        assert len(kills) >= KILLS, f"only {len(kills)} kills"
        assert not [k for k in kills if k.crashed], f"the operator exited on its own: {kills}\n{op.log_tail(120)}"
        assert convergence <= CONVERGENCE_LIMIT, f"converged {convergence:.1f}s after the last kill"

        # Settled: the last operator keeps the state, and creates nothing more.
        settle_until = time.monotonic() + SETTLE_SECONDS
        while time.monotonic() < settle_until:
            assert loop.poll(), f"the loop left its final state (stage {loop.stage})"
            time.sleep(2.0)
        # The last restart may be seconds old: under load an operator takes ~10 s from start to /healthz.
        assert op.running(), f"the last operator exited:\n{op.log_tail(120)}"
        wait_for("the last operator's /healthz", lambda: _healthy(op.healthz), timeout=60)

        # Nothing duplicated.
        jobs = list(loop.jobs.values())
        per_owner = Counter(j["owner_uid"] for j in jobs)
        assert all(n == 1 for n in per_owner.values()), f"an object got more than one Job: {jobs}"
        assert Counter(j["owner_kind"] for j in jobs) == {"TrainingRun": 2, "Dataset": 1}, jobs
        assert sorted(loop.trainingruns.values()) == ["train-1", "train-2"], loop.trainingruns
        assert len(loop.modelversions) == 2 and len(set(loop.modelversions.values())) == 2, loop.modelversions
        assert mlflow_registered_versions(kube, model) == [1, 2]
        assert loop.second_version == 2
        assert set(loop.steps) == {0, 1} and all(len(s) == 1 for s in loop.steps.values()), (
            f"a canary step was started more than once: {loop.steps}"
        )
        deployment_events = reasons(events_about(kube, namespace, "Deployment", "iris"))
        print(f"Deployment events: {dict(Counter(deployment_events))}")
        for once in ("CanaryStarted", "CanaryCompleted"):
            assert deployment_events.count(once) <= 1, _event_story(kube, namespace, loop, kills)
        for run in ("train-1", "train-2"):
            run_events = reasons(events_about(kube, namespace, "TrainingRun", run))
            assert run_events.count("JobCreated") <= 1 and run_events.count("Succeeded") <= 1, run_events
    finally:
        killer.halt.set()
        if killer.is_alive():
            killer.join(timeout=60)
        op.stop()
        print(f"--- operator log (tail) ---\n{op.log_tail(60)}")


def _event_story(kube: Kube, namespace: str, loop: Loop, kills: list[Kill]) -> str:
    """Every Deployment and ModelVersion Event and every kill, in time order: why a canary started twice."""
    lines = [
        f"{e.get('firstTimestamp')}  Deployment/iris  {e['reason']}: {e.get('message')}"
        for e in events_about(kube, namespace, "Deployment", "iris")
    ]
    for name in sorted(set(loop.modelversions.values())):
        lines += [
            f"{e.get('firstTimestamp')}  ModelVersion/{name}  {e['reason']}: {e.get('message')}"
            for e in events_about(kube, namespace, "ModelVersion", name)
        ]
    return "\n".join(["events:", *sorted(lines), "kills (UTC): " + ", ".join(f"{k.wall}/{k.stage}" for k in kills)])


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False
