"""The machinery every controller shares: clients, per-object serialisation, applying a Plan, requeues.

Handlers are level-triggered: any event on an object (or on a child Job, or on an object it
depends on) runs the same reconcile, which reads the world, plans, and applies the difference.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from .. import __version__
from ..api.common import GROUP, VERSION
from ..contract import ANNOTATION_SPEC_HASH
from ..integrations.mlflow import Mlflow, MlflowError
from ..integrations.prometheus import redacted
from ..kubeapi import ApiError, Kube, connection_from_env, custom_path
from ..planning.conditions import status_changed
from ..planning.jobs import WorkerSettings
from ..planning.plan import Obj, Plan
from ..planning.querypolicy import CustomQueries
from ..worker.errors import WorkerError
from ..worker.sourcepolicy import ENV_SOURCE_POLICY, policy_from_env
from . import metrics
from .children import PLURALS, ChildWriter, NameConflictError, collection_of
from .store import Store, collection_paths

log = logging.getLogger("mlops.controllers")

DEFAULT_TRACKING_URI = "http://127.0.0.1:5000"
MAX_BACKOFF_SECONDS = 60.0
APPLY_GRACE_SECONDS = 5.0
EFFECT_CONFIRM_SECONDS = 0.5
DEFAULT_RESYNC_SECONDS = 600.0

Reconciler = Callable[["Runtime", Obj], Awaitable[Plan | None]]


@dataclass(frozen=True)
class Settings:
    """Operator configuration, from the environment (the Helm chart sets these)."""

    tracking_uri: str
    worker_image: str
    server_image: str
    prometheus_url: str | None
    api_qps: float = 20.0
    resync_seconds: float = DEFAULT_RESYNC_SECONDS
    source_policy: str = ""  # JSON (worker/sourcepolicy.py), passed to every worker Job; "": none
    # Prometheus URLs a Deployment's spec.monitoring.prometheusUrl may name (prometheus_url always may).
    prometheus_allowed_urls: tuple[str, ...] = ()
    custom_queries: CustomQueries = "scoped"  # custom PromQL: scoped to the object's namespace, or off
    workload_secret: str = ""  # the per-namespace credentials Secret Jobs and servers get via envFrom

    @classmethod
    def from_env(cls) -> Settings:
        """Read MLFLOW_TRACKING_URI, MLOPS_WORKER_IMAGE, MLOPS_SERVER_IMAGE, MLOPS_PROMETHEUS_URL, MLOPS_API_QPS,
        MLOPS_RESYNC_SECONDS, MLOPS_SOURCE_POLICY, MLOPS_PROMETHEUS_ALLOWED_URLS, MLOPS_CUSTOM_QUERIES,
        MLOPS_WORKLOAD_SECRET."""
        return cls(
            tracking_uri=os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI),
            worker_image=os.environ.get("MLOPS_WORKER_IMAGE", f"mlops-operator/trainer:{__version__}"),
            server_image=os.environ.get("MLOPS_SERVER_IMAGE", f"mlops-operator/server:{__version__}"),
            prometheus_url=_checked_url(os.environ.get("MLOPS_PROMETHEUS_URL") or "") or None,
            # controller-runtime's default: polite to a shared API server; raise it for big fleets.
            api_qps=float(os.environ.get("MLOPS_API_QPS", "20")),
            # A periodic relist repairs whatever a lost watch event left wrong (controller-runtime's SyncPeriod).
            resync_seconds=float(os.environ.get("MLOPS_RESYNC_SECONDS", str(DEFAULT_RESYNC_SECONDS))),
            source_policy=_checked_source_policy(os.environ.get(ENV_SOURCE_POLICY, "")),
            prometheus_allowed_urls=tuple(
                _checked_url(url)
                for url in os.environ.get("MLOPS_PROMETHEUS_ALLOWED_URLS", "").split(",")
                if url.strip()
            ),
            custom_queries=_checked_custom_queries(os.environ.get("MLOPS_CUSTOM_QUERIES", "scoped")),
            workload_secret=_checked_secret_name(os.environ.get("MLOPS_WORKLOAD_SECRET", "")),
        )

    def prometheus_for(self, requested: str | None) -> tuple[str | None, str | None]:
        """The Prometheus a Deployment is analysed with, and why its own URL is refused (if it is): only the
        operator's URL and the chart's allowed ones, compared exactly, so no object points the operator elsewhere."""
        if not requested:
            return self.prometheus_url, None
        allowed = {_url_key(u): u for u in (*self.prometheus_allowed_urls, self.prometheus_url) if u}
        if _url_key(requested) in allowed:  # the chart's own spelling is queried, never the object's
            return allowed[_url_key(requested)], None
        return None, (
            f"spec.monitoring.prometheusUrl {redacted(requested)[:200]} is not an allowed Prometheus "
            "(chart values prometheus.url and prometheus.allowedUrls); nothing is queried"
        )

    @property
    def worker(self) -> WorkerSettings:
        """How Job pods are built."""
        return WorkerSettings(
            image=self.worker_image,
            tracking_uri=self.tracking_uri,
            source_policy=self.source_policy,
            credentials_secret=self.workload_secret,
        )


def _checked_secret_name(raw: str) -> str:
    name = raw.strip()
    if name and not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", name):
        raise ValueError(f"MLOPS_WORKLOAD_SECRET must be a Secret name (DNS subdomain), not {raw!r}")
    return name


def _checked_url(raw: str) -> str:
    # A bad chart value stops the operator at start with the reason, not every Deployment's reconcile later.
    url = raw.strip()
    if url:
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as error:
            raise ValueError(f"Prometheus URL {redacted(url)!r} is not a URL: {error}") from error
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"Prometheus URL {redacted(url)!r} must be http(s)://host[:port][/path]")
    return url


def _url_key(url: str) -> str:
    return url.strip().rstrip("/")


def _checked_custom_queries(raw: str) -> CustomQueries:
    value = raw.strip() or "scoped"
    if value == "scoped":
        return "scoped"
    if value == "off":
        return "off"
    raise ValueError(f"MLOPS_CUSTOM_QUERIES must be 'scoped' or 'off', not {raw!r}")


def _checked_source_policy(raw: str) -> str:
    # A bad chart value stops the operator at start with the reason, not every validation Job later.
    if raw.strip():
        try:
            policy_from_env({ENV_SOURCE_POLICY: raw})
        except WorkerError as error:
            raise ValueError(str(error)) from error
    return raw.strip()


@dataclass
class Runtime(ChildWriter):
    """Shared clients and the per-object state of the reconcile loop."""

    kube: Kube
    mlflow: Mlflow
    settings: Settings
    reconcilers: dict[str, Reconciler] = field(default_factory=dict)
    locks: dict[tuple[str, str, str], asyncio.Lock] = field(default_factory=dict)
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

    def observe(self, kind: str, event_type: str, body: Obj) -> None:
        """Keep the store current from a watch event."""
        meta = body.get("metadata", {})
        if event_type == "DELETED":
            self.store.delete(kind, meta.get("namespace", ""), meta["name"])
            if kind in PLURALS:
                self.forget((kind, meta.get("namespace", ""), meta["name"]))
        else:
            self.store.put(kind, body)

    async def seed_store(self) -> None:
        """LIST everything the cross-kind lookups need, before any handler runs; each kind's entries are
        replaced by the listing, so objects deleted while a watch was down (or during a relist) are dropped."""
        listed: dict[str, list[Obj]] = {}
        for kind, path, selector in collection_paths(self.namespaces):
            listing = await self.kube.get(path, **({"labelSelector": selector} if selector else {}))
            listed.setdefault(kind, []).extend(listing.get("items", []))
        for kind, items in listed.items():
            self.store.replace(kind, items)

    async def resync(self) -> None:
        """Relist into the store and reconcile every object: repairs what a lost watch event left wrong
        (a deleted child is re-created, a missed status change is seen)."""
        await self.seed_store()
        for kind in ("Dataset", "TrainingRun", "ModelVersion", "Deployment"):
            for namespace, name in self.store.keys(kind):
                self.requeue((kind, namespace, name), 0.0)

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
        await self.resync()

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
        async with lock:
            metrics.RECONCILES.labels(kind).inc()
            started = time.perf_counter()
            try:
                current = body if body is not None else await self.get(kind, namespace, name)
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
                        self.requeue(key, plan.requeue_after)
            except StaleObjectError:
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

        self.timers[key] = loop.call_later(delay, fire)

    def forget(self, key: tuple[str, str, str]) -> None:
        """Drop the state kept for a deleted object (timers, back-off, its lock if free, applied hashes)."""
        timer = self.timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self.failures.pop(key, None)
        self.effect_failures.pop(key, None)
        lock = self.locks.get(key)
        if lock is not None and not lock.locked():
            del self.locks[key]
        kind, namespace, name = key
        if kind == "Deployment":
            metrics.forget_object(namespace, name)
            for child in (f"Deployment/{name}-stable", f"Deployment/{name}-canary", f"Service/{name}"):
                self.applied.pop(f"{namespace}/{child}", None)

    async def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        """The current object of one of our kinds."""
        return await self.kube.get_or_none(custom_path(GROUP, VERSION, PLURALS[kind], namespace, name))

    async def apply(self, kind: str, body: Obj, plan: Plan) -> None:
        """Carry out a plan in this order, each step only after the one before succeeded:

        1. creates — children whose deterministic names the status will record (a Job);
        2. the status write, with the read resourceVersion as precondition: a pass planned from a stale
           body writes nothing and does nothing further (409 → re-read);
        3. Events — the transitions that status write recorded (before any outside effect can fail);
        4. creates after status — objects whose decision status had to record first (a retraining run);
        5. applies — children created or patched to their desired spec, skipping one just applied; then
           patches of existing children (a finished Job's TTL);
        6. outside effects — alias moves recorded in status as intent; a failure is retried with back-off,
           and the next pass confirms the effect from MLflow and marks it done;
        7. wake — objects whose view depends on this one.
        """
        for obj in plan.creates:
            await self.create(obj)
        current = dict(body.get("status") or {})
        if status_changed(current, plan.status):
            await self.write_status(kind, body, plan.status)
            if current.get("phase") != plan.status.get("phase") and not plan.events:
                message = plan.status.get("message") or f"phase {plan.status.get('phase')}"
                await self.post_event(body, "Normal", str(plan.status.get("phase")), message)
        for event in plan.events:
            await self.post_event(body, event.type, event.reason, event.message)
        metrics.count_events(plan.events, body["metadata"]["namespace"], body["metadata"]["name"])
        for obj in plan.creates_after_status:
            await self.create(obj)
        namespace = body["metadata"]["namespace"]
        await self._claimable(plan.applies)
        for obj in plan.applies:
            if not self._just_applied(namespace, obj):
                await self.create_or_patch(obj)
        for child, patch in plan.patches:
            try:
                await self.kube.merge_patch(f"{collection_of(child)}/{child['metadata']['name']}", patch)
            except ApiError as error:
                if error.status != 404:  # gone already: nothing left to patch
                    raise
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
            await self.kube.merge_patch(path, patch)
        except ApiError as error:
            if error.status == 409:
                raise StaleObjectError(str(error)) from error
            raise


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
            mlflow=Mlflow(settings.tracking_uri),
            settings=settings,
            namespaces=list(_namespaces),
        )
    return _runtime
