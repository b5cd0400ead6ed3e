"""Reading the local API server's audit log: the requests of the audited identity, by verb and resource.

Only `ClusterConfig.audited_kubeconfig`'s identity is audited (cluster.AUDIT_POLICY), one line per request,
so a bench or a test that runs a client under it counts exactly what that client asked for.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

READ_VERBS = frozenset({"get", "list", "watch"})


class AuditLog:
    """The audit log from a marked offset on, optionally only the requests about one namespace."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def mark(self) -> None:
        """Count from here on."""
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def since_mark(self, namespace: str | None = None) -> Counter[tuple[str, str]]:
        """(verb, resource or resource/subresource) -> requests since the mark; a rotated log counts from its start."""
        counts: Counter[tuple[str, str]] = Counter()
        if not self.path.exists():
            return counts
        with self.path.open("rb") as handle:
            handle.seek(self.offset if self.path.stat().st_size >= self.offset else 0)
            for line in handle:
                entry = json.loads(line)
                ref = entry.get("objectRef") or {}
                if namespace is not None and ref.get("namespace") != namespace:
                    continue
                resource = ref.get("resource") or entry.get("requestURI", "?").split("?", 1)[0]
                if ref.get("subresource"):
                    resource += f"/{ref['subresource']}"
                counts[(entry["verb"], resource)] += 1
        return counts

    def size(self) -> int:
        """The log's size now (it grows with every audited request)."""
        return self.path.stat().st_size if self.path.exists() else 0


def writes(counts: Counter[tuple[str, str]]) -> Counter[tuple[str, str]]:
    """Only the requests that change something."""
    return Counter({key: n for key, n in counts.items() if key[0] not in READ_VERBS})


def per_object_reads(counts: Counter[tuple[str, str]]) -> Counter[tuple[str, str]]:
    """GETs of single objects (LISTs and WATCHes are per kind, not per object)."""
    return Counter({key: n for key, n in counts.items() if key[0] == "get" and not key[1].startswith("/")})
