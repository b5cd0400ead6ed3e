"""Listing into the store: the seed before any handler runs, a kind's relist after kopf's watch expired, a child
collection's relist after its watch expired, and the periodic resync that repairs what a lost event left wrong.

One list-and-merge of a kind at a time: an older listing merged after a newer one would bring back what the newer
one dropped. Listings are paged and cut to what the store keeps (10,000 objects' whole bodies at once set the
process's peak RSS).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time

import httpx

from ..kubeapi import ApiError, Kube
from ..planning.plan import Obj
from . import metrics
from .children import PLURALS, STORE_KINDS
from .store import BODY_KINDS, Store, collection_paths, namespace_of, slim

log = logging.getLogger("mlops.controllers")

LISTING_QUIET_SECONDS = 30.0  # no listed object of a kind for this long, then one more: kopf relists
RELIST_DELAY_SECONDS = 2.0
LIST_PAGE_SIZE = 500


class StoreListing:
    """The runtime's listings into its store (a mixin over the runtime's clients, store and requeues)."""

    kube: Kube
    store: Store
    namespaces: list[str]
    applied: dict[str, tuple[str, float]]
    listings: dict[str, float]
    relists: dict[str, asyncio.Task[None]]
    list_versions: dict[str, str]
    listing_locks: dict[str, asyncio.Lock]

    def wake_owner(self, namespace: str, obj: Obj | None, urgent: bool = False) -> None:
        """Reconcile the owner of `obj` soon (the runtime's)."""
        raise NotImplementedError

    def requeue(self, key: tuple[str, str, str], delay: float) -> None:
        """Reconcile an object after `delay` seconds (the runtime's)."""
        raise NotImplementedError

    def forget(self, key: tuple[str, str, str]) -> None:
        """Drop the state kept for a deleted object (the runtime's)."""
        raise NotImplementedError

    def observe(self, kind: str, event_type: str | None, body: Obj) -> bool:
        """Keep the store current from a watch event (type None: an object of kopf's (re)listing); True if the
        object is gone or what the lookups read of it changed."""
        meta, changed = body.get("metadata", {}), True
        if event_type == "DELETED":
            self.store.delete(kind, meta.get("namespace", ""), meta["name"])
            if kind in PLURALS:
                self.forget((kind, meta.get("namespace", ""), meta["name"]))
            # A child deleted right after we applied it must be applied again, not skipped as "just applied".
            child_kind = next((child for child, stored in STORE_KINDS.items() if stored == kind), kind)
            self.applied.pop(f"{meta.get('namespace', '')}/{child_kind}/{meta['name']}", None)
        else:
            changed = self.store.put(kind, body)
        if event_type is None:
            self._note_listing(kind)
        return changed

    def _note_listing(self, kind: str) -> None:
        # kopf relists after a watch expired (410 Gone) but sends no DELETED for what went away in the gap, and
        # says nothing when its listing ends; a listing that starts after a quiet spell is a relist, so the
        # store relists the kind itself. The first listing follows seed_store and needs no second LIST.
        now, last = time.monotonic(), self.listings.get(kind)
        self.listings[kind] = now
        if last is None or now - last < LISTING_QUIET_SECONDS or kind in self.relists:
            return
        with contextlib.suppress(RuntimeError):  # no running loop: a synchronous caller (tests) relists itself
            self.relists[kind] = asyncio.get_running_loop().create_task(
                self._relist_after_watch(kind), context=contextvars.Context()
            )

    async def _relist_after_watch(self, kind: str) -> None:
        try:
            await asyncio.sleep(RELIST_DELAY_SECONDS)  # after kopf's listing, which ours then supersedes
            dropped = await self.relist(kind)
            metrics.STORE_RELISTS.labels(kind).inc()
            log.info("%s watch relisted: the store dropped %d object(s) deleted meanwhile", kind, len(dropped))
        except (ApiError, OSError, httpx.HTTPError) as error:
            log.warning("relisting %s failed: %r; the periodic resync repairs the store", kind, error)
        finally:
            self.relists.pop(kind, None)

    async def relist(self, kind: str) -> list[tuple[tuple[str, str], Obj]]:
        """LIST one kind into the store (merged with newer watch events) and reconcile whatever depended on
        the objects it no longer holds: an owner whose child went away re-creates it. Returns the dropped."""
        paths = [(path, selector) for listed, path, selector in collection_paths(self.namespaces) if listed == kind]
        dropped = await self._list_into_store(kind, paths)
        self._dropped(kind, dropped)
        return dropped

    async def _list_into_store(
        self,
        kind: str,
        paths: list[tuple[str, str]],
        namespace: str | None = None,
        changed: list[tuple[str, str]] | None = None,
    ) -> list[tuple[tuple[str, str], Obj]]:
        """LIST collections of one kind and merge them into the store (`Store.replace`), one listing of a kind at
        a time: an older listing merged after a newer one would bring back what the newer one dropped."""
        async with self.listing_locks.setdefault(kind, asyncio.Lock()):
            listed_at, items = self.store.revision, []
            for path, selector in paths:
                items += await self._list(kind, path, selector)
            return self.store.replace(kind, items, listed_at, namespace=namespace, changed=changed)

    async def relist_collection(self, kind: str, path: str, selector: str) -> str:
        """LIST one collection into the store (a watch of it expired) and wake the owners of what it no longer
        holds or holds changed (a track that became Ready in the gap); returns the listing's resourceVersion,
        where the next watch starts."""
        changed: list[tuple[str, str]] = []
        dropped = await self._list_into_store(kind, [(path, selector)], namespace_of(path), changed)
        version = self.list_versions[path]
        self._dropped(kind, dropped)
        for namespace, name in changed:
            self.wake_owner(namespace, self.store.get(kind, namespace, name))
        metrics.STORE_RELISTS.labels(kind).inc()
        if dropped:
            log.info("%s watch relisted: the store dropped %d object(s) deleted meanwhile", kind, len(dropped))
        return version

    def _dropped(self, kind: str, dropped: list[tuple[tuple[str, str], Obj]]) -> None:
        """Forget objects a listing no longer holds; an owner whose child went away is reconciled to re-create it."""
        for (namespace, name), obj in dropped:
            if kind in PLURALS:
                self.forget((kind, namespace, name))
            self.wake_owner(namespace, obj)

    async def seed_store(self) -> list[tuple[str, str, str, Obj | None]]:
        """LIST everything the cross-kind lookups need, before any handler runs; each kind's entries are
        replaced by the listing, so objects deleted while a watch was down (or during a relist) are dropped.
        Returns what the listing found changed, new or gone: (kind, namespace, name, the entry it dropped or None)."""
        # One kind at a time, in pages: 10,000 objects' bodies decoded at once would set the process's peak RSS.
        paths: dict[str, list[tuple[str, str]]] = {}
        for kind, path, selector in collection_paths(self.namespaces):
            paths.setdefault(kind, []).append((path, selector))
        touched: list[tuple[str, str, str, Obj | None]] = []
        for kind, kind_paths in paths.items():
            changed: list[tuple[str, str]] = []
            dropped = await self._list_into_store(kind, kind_paths, changed=changed)
            touched += [(kind, namespace, name, None) for namespace, name in changed]
            touched += [(kind, namespace, name, obj) for (namespace, name), obj in dropped]
        return touched

    async def _list(self, kind: str, path: str, selector: str) -> list[Obj]:
        """Every object of a collection, LISTed in pages of LIST_PAGE_SIZE and cut to what the store keeps of each;
        the listing's resourceVersion (one snapshot across its pages) is kept in `list_versions`, for a watch."""
        items: list[Obj] = []
        params: dict[str, str | int] = {"limit": LIST_PAGE_SIZE, **({"labelSelector": selector} if selector else {})}
        while True:
            listing = await self.kube.get(path, **params)
            items += [slim(kind, item) for item in listing.get("items", [])]
            meta = listing.get("metadata") or {}
            if not meta.get("continue"):
                self.list_versions[path] = str(meta.get("resourceVersion") or "")
                return items
            params["continue"] = meta["continue"]

    async def resync(self, everything: bool = False) -> None:
        """Relist into the store and reconcile what a lost watch event left wrong: every object the listing found
        changed or gone, and the owner of every such child (a deleted child is re-created, a missed status change
        is seen); with `everything`, every object (a replica that starts leading has no timers yet).

        Not every object each period: what waits on time or on MLflow has its own timer, and 10,000 passes at
        once held a spec change's pass for seconds (the 10,000-object bench's reaction p95 2.3 s)."""
        touched = await self.seed_store()
        if everything:
            for kind in BODY_KINDS:
                for namespace, name in self.store.keys(kind):
                    self.requeue((kind, namespace, name), 0.0)
            return
        for kind, namespace, name, dropped in touched:
            if kind in BODY_KINDS:
                if dropped is not None:
                    self.forget((kind, namespace, name))
                else:
                    self.requeue((kind, namespace, name), 0.0)
            self.wake_owner(namespace, dropped or self.store.get(kind, namespace, name))
        if touched:
            log.info("resync: %d object(s) had changed or gone without a watch event", len(touched))
