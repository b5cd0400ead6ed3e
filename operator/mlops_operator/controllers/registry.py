"""Registers every controller with kopf, wires each kind to its reconciler, and runs the leader election."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import kopf

from ..kubeapi import Kube, connection_from_env
from ..notify.delivery import Notifier
from . import (  # noqa: F401  (handlers register on import)
    datasets,
    deployments,
    main,
    metrics,
    modelversions,
    notificationpolicies,
    trainingruns,
)
from .childwatch import start_watches
from .leader import ElectionSettings, LeaderElector
from .runtime import runtime

log = logging.getLogger("mlops.controllers")


@dataclass
class Election:
    """The running election: its elector, the task running it, and the client it renews with."""

    elector: LeaderElector
    task: asyncio.Task[None]
    kube: Kube


_election: Election | None = None
_settings: ElectionSettings | None = None
_resync: asyncio.Task[None] | None = None
_watches: list[asyncio.Task[None]] = []  # the children's watches (controllers/childwatch.py)


def use_election(settings: ElectionSettings) -> None:
    """Set the election settings before the operator starts (default: read from the environment at startup)."""
    global _settings
    _settings = settings


@kopf.on.startup()
async def start_runtime(**_: Any) -> None:
    """Create the shared clients, wire each kind to its reconciler, seed the store, and start the periodic resync."""
    global _resync
    rt = runtime()
    rt.reconcilers.update(
        Dataset=datasets.reconcile_dataset,
        TrainingRun=trainingruns.reconcile_trainingrun,
        ModelVersion=modelversions.reconcile_modelversion,
        Deployment=deployments.reconcile_deployment,
        NotificationPolicy=notificationpolicies.reconcile_notificationpolicy,
    )
    rt.notifier = Notifier(rt.settings.notifications)
    rt.notifier.start()
    await rt.seed_store()
    _resync = asyncio.create_task(rt.resync_forever(), name="resync")  # a reference, or the loop may collect it


@kopf.on.startup()
async def start_leader_election(**_: Any) -> None:
    """Lead at once if the Lease is free (before kopf's first listing), else follow; elect in the background."""
    global _election
    rt = runtime()
    settings = _settings or ElectionSettings.from_env(rt.namespaces)
    if not settings.enabled:
        log.info("leader election is off (MLOPS_LEADER_ELECTION=false): this replica acts alone")
        metrics.LEADER.set(1)
        return
    # A client of its own: a burst of reconciles queued at the shared client's rate limit must never delay a
    # renewal past the renew deadline.
    kube = Kube(connection_from_env(), qps=5, burst=5, timeout=max(1.0, settings.renew_deadline / 2))
    elector = LeaderElector(kube, settings, on_started_leading=rt.start_leading, on_stopped_leading=rt.stop_leading)
    # Startup handlers finish before kopf starts watching, so a replica that leads from here on needs no catch-up
    # pass: kopf's initial listing delivers every object.
    if await elector.acquire_once():
        rt.leading = True
    else:
        rt.leading = False
        log.info("following: the leader Lease %s is held by %s", elector.describe(), elector.holder or "nobody")
    _election = Election(elector, asyncio.create_task(elector.run(), name="leader-election"), kube)


@kopf.on.startup()
async def start_child_watches(**_: Any) -> None:
    """Watch the children from the seed's listing, once the election has decided whether this replica leads
    (kopf runs startup handlers in turn): a replayed event must not start a pass on a follower."""
    _watches[:] = start_watches(runtime())


@kopf.on.cleanup()
async def stop_runtime(**_: Any) -> None:
    """Stop leading and release the Lease (a follower takes over at once), then close the shared clients."""
    global _election, _resync
    rt = runtime()
    if _resync is not None:
        _resync.cancel()
        _resync = None
    for watch in _watches:
        watch.cancel()
    if _watches:
        await asyncio.wait(_watches)
    _watches.clear()
    if _election is not None:
        election, _election = _election, None
        election.task.cancel()
        await asyncio.wait([election.task])  # run() stops leading and releases the Lease on its way out
        await election.kube.aclose()
    for timer in rt.timers.values():
        timer.cancel()
    if rt.notifier is not None:  # what is still queued gets a moment, then is counted as dropped
        await rt.notifier.close(grace=3.0)
    await rt.kube.aclose()
    await rt.mlflow.aclose()
