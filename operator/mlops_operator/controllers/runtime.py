"""The machinery every controller shares: clients, per-object serialisation, applying a Plan, requeues.

Handlers are level-triggered: any event on an object (or on a child Job, or on an object it
depends on) runs the same reconcile, which reads the world, plans, and applies the difference.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import socket
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from .. import contract
from ..api.common import GROUP, VERSION
from ..contract import ANNOTATION_SPEC_HASH
from ..integrations.mlflow import Mlflow, MlflowError
from ..integrations.mlflowcache import CachedMlflow
from ..kubeapi import ApiError, Kube, connection_from_env, custom_path
from ..notify.delivery import Notifier
from ..notify.routing import plan_deliveries
from ..planning.conditions import status_changed
from ..planning.plan import Event, Obj, Plan
from . import metrics
from .children import PLURALS, ChildWriter, NameConflictError, collection_of, store_kind
from .listing import StoreListing
from .settings import Settings
from .slots import PassSlots
from .store import Store

log = logging.getLogger("mlops.controllers")

MAX_BACKOFF_SECONDS = 60.0
APPLY_GRACE_SECONDS = 5.0
EFFECT_CONFIRM_SECONDS = 0.5
MAX_CONCURRENT_PASSES = 32
SPREAD_ABOVE_SECONDS = 30.0
SPREAD_FRACTION = 0.1

Reconciler = Callable[["Runtime", Obj], Awaitable[Plan | None]]


@dataclass
class Runtime(ChildWriter, StoreListing):
    """Shared clients and the per-object state of the reconcile loop."""

    kube: Kube
    mlflow: Mlflow
    settings: Settings
    reconcilers: dict[str, Reconciler] = field(default_factory=dict)
    locks: dict[tuple[str, str, str], asyncio.Lock] = field(default_factory=dict)
    # A pass already waiting for its object's lock, with the newest body it was asked with (None: GET it):
    # later requests only update the body, as controller-runtime's workqueue holds a key once.
    waiting: dict[tuple[str, str, str], Obj | None] = field(default_factory=dict)
    timers: dict[tuple[str, str, str], asyncio.TimerHandle] = field(default_factory=dict)
    failures: dict[tuple[str, str, str], int] = field(default_factory=dict)
    # Failed alias moves in a row, and the monotonic time before which the move is not tried again.
    effect_failures: dict[tuple[str, str, str], tuple[int, float]] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    applied: dict[str, tuple[str, float]] = field(default_factory=dict)  # child -> (spec hash, when applied)
    store: Store = field(default_factory=Store)
    namespaces: list[str] = field(default_factory=list)  # watched namespaces; empty: all
    profiles: dict[tuple[str, str, int], Obj] = field(default_factory=dict)  # reference profiles by version
    leading: bool = True  # False on a follower replica: it keeps its store current but acts on nothing
    listings: dict[str, float] = field(default_factory=dict)  # kind -> monotonic time of its last listed object
    relists: dict[str, asyncio.Task[None]] = field(default_factory=dict)  # kind -> the store relist under way
    notifier: Notifier | None = None  # sends the namespace's NotificationPolicy destinations what a pass posted
    stale: set[tuple[str, str, str]] = field(default_factory=set)  # a status write found these changed: GET them
    # Passes under way at once (kopf's worker limit bounds only the passes its events start, not our timers').
    # Past the API client's rate, more passes only wait holding what they gathered: 10,000 objects' backed-off
    # looks at once held 490 MiB. A pass waits here before it gathers anything.
    passes: PassSlots = field(default_factory=lambda: PassSlots(MAX_CONCURRENT_PASSES))
    # Keys a watch event asked for (first in line), with when the first of those events came (monotonic).
    urgent: dict[tuple[str, str, str], float] = field(default_factory=dict)
    list_versions: dict[str, str] = field(default_factory=dict)  # collection path -> resourceVersion of its LIST
    # One list-and-merge of a kind at a time (a resync's seed and a watch's relist can run together).
    listing_locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def wake_owner(self, namespace: str, obj: Obj | None, urgent: bool = False) -> None:
        """Reconcile the object of ours that controls `obj` (its controller ownerReference), if any, soon; `urgent`:
        ahead of the timers' passes, as for a watch event."""
        for ref in ((obj or {}).get("metadata") or {}).get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") in PLURALS:
                if urgent:
                    self.enqueue(ref["kind"], namespace, ref["name"])
                else:
                    self.requeue((ref["kind"], namespace, ref["name"]), 0.0)

    async def resync_forever(self) -> None:
        """`resync` every `settings.resync_seconds`; a failed relist is logged and tried at the next period."""
        while True:
            await asyncio.sleep(self.settings.resync_seconds)
            if not self.leading:
                continue
            try:
                await self.resync()
            except (ApiError, OSError, httpx.HTTPError) as error:
                log.warning("resync failed: %r; next in %.0fs", error, self.settings.resync_seconds)

    async def start_leading(self) -> None:
        """This replica leads now: relist (a follower's store may lag) and reconcile everything."""
        self.leading = True
        await self.resync(everything=True)

    def stop_leading(self) -> None:
        """Another replica leads: act on nothing, keep no timers."""
        self.leading = False
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()

    async def reconcile(self, kind: str, namespace: str, name: str, body: Obj | None = None) -> None:
        """Run the kind's reconciler for one object, one pass at a time per object; never raises."""
        key = (kind, namespace, name)
        if not self.leading:
            return
        lock = self.locks.setdefault(key, asyncio.Lock())
        if lock.locked() and key in self.waiting:  # one pass waits already and will see the newest state
            if body is not None:
                self.waiting[key] = body
            metrics.RECONCILES_COALESCED.labels(kind).inc()
            return
        self.waiting[key] = body
        asked_at = time.monotonic()
        try:
            await lock.acquire()
        finally:
            body = self.waiting.pop(key, body)
        try:
            await self.passes.acquire(urgent=key in self.urgent, key=key)
            event_at = self.urgent.pop(key, None)
            queue = "event" if event_at is not None else "timer"
            metrics.QUEUE_SECONDS.labels(kind, queue).observe(time.monotonic() - (event_at or asked_at))
            try:
                await self._pass(key, body)
            finally:
                self.passes.release()
        finally:
            lock.release()

    async def _pass(self, key: tuple[str, str, str], body: Obj | None) -> None:
        """One reconcile: read (the store's copy unless an event brought one), plan, apply; failures requeue."""
        kind, namespace, name = key
        metrics.RECONCILES.labels(kind).inc()
        started = time.perf_counter()
        try:
            current = body if body is not None else await self.get(kind, namespace, name, fresh=key in self.stale)
            self.stale.discard(key)
            if current is None or current["metadata"].get("deletionTimestamp"):
                self.forget(key)
                self.forget_conflicts(((current or body or {}).get("metadata") or {}).get("uid"))
                return
            if not self.leading:  # leadership was lost while this pass waited for its lock
                return
            plan = await self.reconcilers[kind](self, current)
            if plan is not None:
                await self.apply(kind, current, plan)
                self.failures.pop(key, None)
                if plan.requeue_after is not None:
                    self.requeue(key, spread(key, plan.requeue_after))
        except StaleObjectError:  # the next pass reads the object from the API server, not the store
            self.stale.add(key)
            self.requeue(key, 0.2)
        except NameConflictError as error:  # recorded in the store: the next pass's plan says so
            delay = 0.2 if key not in self.failures else self._backoff(key)
            self.failures.setdefault(key, 0)
            log.warning("%s %s/%s: %s; looking again in %.1fs", kind, namespace, name, error, delay)
            self.requeue(key, delay)
        except (MlflowError, ApiError, OSError, httpx.HTTPError) as error:  # outside failures: no traceback
            metrics.RECONCILE_ERRORS.labels(kind).inc()
            delay = self._backoff(key)
            log.warning("%s %s/%s: %s; retrying in %.0fs", kind, namespace, name, str(error) or repr(error), delay)
            self.requeue(key, delay)
        except Exception:
            metrics.RECONCILE_ERRORS.labels(kind).inc()
            delay = self._backoff(key)
            log.exception("%s %s/%s: reconcile failed; retrying in %.0fs", kind, namespace, name, delay)
            self.requeue(key, delay)
        finally:
            metrics.RECONCILE_SECONDS.labels(kind).observe(time.perf_counter() - started)

    def _backoff(self, key: tuple[str, str, str]) -> float:
        count = self.failures[key] = self.failures.get(key, 0) + 1
        return min(MAX_BACKOFF_SECONDS, 2.0 ** min(count, 6))

    def event(self, kind: str, event_type: str | None, body: Obj) -> bool:
        """Keep the store current from a watch event of one of our own objects and reconcile it (unless deleted);
        True if the event is news. One the store held already (the echo of a status write of ours, whose answer
        it kept, or a restart's listing of what the seed read) is reconciled after the timers' passes, not before:
        a backlog of 13,000 echoes held a person's spec change for seconds (the 10,000-object bench)."""
        news = not self.store.holds(kind, body)
        self.observe(kind, event_type, body)
        if event_type != "DELETED":
            meta = body["metadata"]
            self.enqueue(kind, meta.get("namespace", ""), meta["name"], urgent=news)
        return news

    def enqueue(self, kind: str, namespace: str, name: str, urgent: bool = True) -> None:
        """Reconcile an object soon, from the store's copy (`urgent`: ahead of the timers' passes). Watch handlers
        only enqueue (controller-runtime's workqueue): a handler that waited for its pass kept kopf's per-object
        queues, each holding full event bodies, filling while passes waited at the API rate (10,000 objects: past
        500 MiB)."""
        if not self.leading:
            return
        if urgent:
            self.urgent.setdefault((kind, namespace, name), time.monotonic())
            self.passes.promote((kind, namespace, name))  # a timer's pass of it waits for a slot: it goes first now
        self.requeue((kind, namespace, name), 0.0)

    def requeue(self, key: tuple[str, str, str], delay: float) -> None:
        """Reconcile again after `delay` seconds (the earlier of two requests wins)."""
        loop = asyncio.get_running_loop()
        existing = self.timers.get(key)
        if existing is not None and not existing.cancelled() and existing.when() <= loop.time() + delay:
            return
        if existing is not None:
            existing.cancel()

        def fire() -> None:
            self.timers.pop(key, None)
            task = loop.create_task(self.reconcile(*key))
            self.tasks.add(task)  # keep a reference until done, or the loop may collect it mid-flight
            task.add_done_callback(self.tasks.discard)

        # In an empty context, not the caller's: a handler's context holds kopf's cause with the event's whole body,
        # and every pass and back-off chained from this timer kept it alive (about 20 KB an object, with managedFields).
        self.timers[key] = loop.call_later(delay, fire, context=contextvars.Context())

    def forget(self, key: tuple[str, str, str]) -> None:
        """Drop the state kept for a deleted object (timers, back-off, its lock if free, applied hashes)."""
        timer = self.timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self.failures.pop(key, None)
        self.effect_failures.pop(key, None)
        self.stale.discard(key)
        self.urgent.pop(key, None)
        lock = self.locks.get(key)
        if lock is not None and not lock.locked():
            del self.locks[key]
        kind, namespace, name = key
        if kind == "Deployment":
            metrics.forget_object(namespace, name)
            for child in (
                f"Deployment/{name}-stable",
                f"Deployment/{name}-canary",
                f"Service/{name}",
                f"HorizontalPodAutoscaler/{name}-stable",
                f"PodDisruptionBudget/{name}-stable",
                f"PodDisruptionBudget/{name}-canary",
            ):
                self.applied.pop(f"{namespace}/{child}", None)

    async def get(self, kind: str, namespace: str, name: str, fresh: bool = False) -> Obj | None:
        """One of our objects: the store's latest copy once the kind is listed (None: it does not exist), else, or
        when `fresh`, the API server's (which the store then keeps)."""
        if not fresh and kind in self.store.listed:
            return self.store.body(kind, namespace, name)
        current = await self.kube.get_or_none(custom_path(GROUP, VERSION, PLURALS[kind], namespace, name))
        self.remember(kind, current)
        return current

    async def apply(self, kind: str, body: Obj, plan: Plan) -> None:
        """Carry out a plan in this order, each step only after the one before succeeded:

        1. creates — children whose deterministic names the status will record (a Job);
        2. the status write, with the read resourceVersion as precondition: a pass planned from a stale
           body writes nothing and does nothing further (409 → re-read);
        3. Events — the transitions that status write recorded (before any outside effect can fail);
        4. creates after status — objects whose decision status had to record first (a retraining run);
        5. applies — children created or patched to their desired spec, skipping one just applied; then
           deletes of children of ours that spec no longer asks for (an HPA); then patches of existing
           children (a finished Job's TTL);
        6. outside effects — alias moves recorded in status as intent; a failure is retried with back-off,
           and the next pass confirms the effect from MLflow and marks it done;
        7. wake — objects whose view depends on this one.
        """
        for obj in plan.creates:
            await self.create(obj)
        current = dict(body.get("status") or {})
        events = list(plan.events)
        if status_changed(current, plan.status):
            await self.write_status(kind, body, plan.status)
            if current.get("phase") != plan.status.get("phase") and not plan.events:
                message = plan.status.get("message") or f"phase {plan.status.get('phase')}"
                events.append(Event(str(plan.status.get("phase")), message))
        for event in events:
            await self.post_event(body, event.type, event.reason, event.message)
        labels = body["metadata"].get("labels") or {}
        metrics.count_events(
            plan.events,
            body["metadata"]["namespace"],
            body["metadata"]["name"],
            kind=kind,
            trigger=labels.get(contract.LABEL_TRIGGER, ""),
        )
        self._notify(body, {**current, **plan.status}, events)
        for obj in plan.creates_after_status:
            await self.create(obj)
        namespace = body["metadata"]["namespace"]
        await self.apply_set([obj for obj in plan.applies if not self._just_applied(namespace, obj)])
        for obj in plan.deletes:
            await self.delete_child(obj)
        for child, patch in plan.patches:
            try:
                patched = await self.kube.merge_patch(f"{collection_of(child)}/{child['metadata']['name']}", patch)
            except ApiError as error:
                if error.status != 404:  # gone already: nothing left to patch
                    raise
            else:
                self.remember(store_kind(child), patched)
        key = (kind, namespace, body["metadata"]["name"])
        # Tags before alias moves: the version an alias names always carries its record (an approval's).
        effects: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            (f"tagging {model} version {version}", functools.partial(self._tag_version, model, version, tags))
            for model, version, tags in plan.version_tags
        ]
        effects += [
            ("alias move", functools.partial(self.mlflow.set_alias, model, alias, version))
            for model, alias, version in plan.alias_moves
        ]
        for what, effect in effects:
            # Passes come from every track event too: a failed effect waits out its back-off whatever wakes us.
            count, not_before = self.effect_failures.get(key, (0, 0.0))
            wait = not_before - time.monotonic()
            if wait > 0:
                plan.requeue_after = wait
                break
            try:
                await effect()
            except MlflowError as error:
                delay = min(MAX_BACKOFF_SECONDS, 2.0 ** min(count + 1, 6))
                self.effect_failures[key] = (count + 1, time.monotonic() + delay)
                log.warning("%s %s/%s: %s failed: %s; retrying in %.0fs", *key, what, error, delay)
                plan.requeue_after = delay
                break
            self.effect_failures.pop(key, None)
            if what == "alias move":
                metrics.PROMOTIONS.labels("canary" if kind == "Deployment" else "direct").inc()
            plan.requeue_after = EFFECT_CONFIRM_SECONDS  # confirm from MLflow and mark the intent done
        for wake_kind, wake_namespace, name in plan.wake:
            self.requeue((wake_kind, wake_namespace or namespace, name), 0.0)

    def _notify(self, body: Obj, status: Obj, events: list[Event]) -> None:
        """Queue the notifications of the Events just posted (a function of each Event and the object); the
        queue is bounded and never waits, so a slow receiver cannot slow a reconcile."""
        if self.notifier is None or not events:
            return
        namespace = body["metadata"]["namespace"]
        policies = self.store.in_namespace("NotificationPolicy", namespace)
        if policies:
            self.notifier.submit(plan_deliveries(policies, body, status, events, datetime.now(UTC)))

    async def _tag_version(self, model: str, version: int, tags: dict[str, str]) -> None:
        for tag, value in sorted(tags.items()):
            await self.mlflow.set_version_tag(model, version, tag, value)

    def _just_applied(self, namespace: str, child: Obj) -> bool:
        """True if this exact spec was applied moments ago and the watch has not caught up yet (no double patch)."""
        key = f"{namespace}/{child['kind']}/{child['metadata']['name']}"
        digest = (child["metadata"].get("annotations") or {}).get(ANNOTATION_SPEC_HASH, "")
        previous = self.applied.get(key)
        now = time.monotonic()
        if previous is not None and previous[0] == digest and now - previous[1] < APPLY_GRACE_SECONDS:
            return True
        self.applied[key] = (digest, now)
        return False

    async def post_event(self, body: Obj, event_type: str, reason: str, message: str) -> None:
        """Post a core/v1 Event about `body` right away (a queued one would be lost if the operator died now)."""
        meta = body["metadata"]
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": body.get("apiVersion"),
                "kind": body.get("kind"),
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "reason": reason,
            "message": message[:1000],
            "type": event_type,
            "source": {"component": "mlops-operator"},
            "reportingComponent": "mlops-operator",
            "reportingInstance": socket.gethostname(),
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            await self.kube.create(f"/api/v1/namespaces/{meta['namespace']}/events", event)
        except ApiError as error:  # an Event is a courtesy; never fail a reconcile over one
            log.warning("could not post event %s on %s/%s: %s", reason, meta["namespace"], meta["name"], error)

    async def write_status(self, kind: str, body: Obj, status: Obj) -> None:
        """Merge-patch status with the read resourceVersion as a precondition: a stale pass writes nothing."""
        meta = body["metadata"]
        path = custom_path(GROUP, VERSION, PLURALS[kind], meta["namespace"], meta["name"]) + "/status"
        patch = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": status}
        try:
            written = await self.kube.merge_patch(path, patch)
        except ApiError as error:
            if error.status == 409:
                raise StaleObjectError(str(error)) from error
            raise
        self.remember(kind, written)


def spread(key: tuple[str, str, str], delay: float) -> float:
    """A long planned wait made up to SPREAD_FRACTION longer, by an amount fixed per object: objects created
    together back off together, and 2,500 ModelVersions' looks coming due in the same second held a spec
    change's pass on a busy event loop (Flux jitters its intervals for the same reason)."""
    if delay <= SPREAD_ABOVE_SECONDS:
        return delay
    return delay * (1.0 + SPREAD_FRACTION * (zlib.crc32("/".join(key).encode()) / 0xFFFFFFFF))


class StaleObjectError(Exception):
    """The object changed since it was read; the pass is repeated on the fresh copy."""


_runtime: Runtime | None = None
_namespaces: list[str] = []


def watch_namespaces(namespaces: list[str]) -> None:
    """Record which namespaces the operator watches (before it starts), for the startup LIST."""
    _namespaces[:] = namespaces


def runtime() -> Runtime:
    """The process-wide runtime, created on first use inside the operator's event loop."""
    global _runtime
    if _runtime is None:
        settings = Settings.from_env()
        _runtime = Runtime(
            kube=Kube(connection_from_env(), qps=settings.api_qps, burst=int(2 * settings.api_qps)),
            mlflow=CachedMlflow(settings.tracking_uri),
            settings=settings,
            namespaces=list(_namespaces),
        )
    return _runtime
