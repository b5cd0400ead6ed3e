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
        self.inode: int | None = None
        self.head = b""  # the marked file's first bytes: an inode can be reused by a file created later

    def mark(self) -> None:
        """Count from here on."""
        if self.path.exists():
            stat = self.path.stat()
            self.inode, self.offset, self.head = stat.st_ino, stat.st_size, _head(self.path)
        else:
            self.inode, self.offset, self.head = None, 0, b""

    def _segments(self) -> list[tuple[Path, int]]:
        """(file, offset) pairs to read, oldest first: the marked file from the mark, then the current log if
        the API server rotated the marked one away (renamed to audit-<time>.log, the same inode)."""
        if not self.path.exists():
            return []
        current = self.path.stat()
        if self.inode is None or self._is_marked(self.path):
            return [(self.path, self.offset if current.st_size >= self.offset else 0)]
        rotated = [p for p in self.path.parent.glob(f"{self.path.stem}-*{self.path.suffix}") if self._is_marked(p)]
        if not rotated:  # rotated twice: the backup that held the mark is deleted, and counts would be short
            raise RuntimeError(f"{self.path} was rotated more than once since the mark: requests were lost")
        return [(rotated[0], self.offset), (self.path, 0)]

    def _is_marked(self, path: Path) -> bool:
        return path.stat().st_ino == self.inode and _head(path)[: len(self.head)] == self.head

    def since_mark(self, namespace: str | None = None) -> Counter[tuple[str, str]]:
        """(verb, resource or resource/subresource) -> requests since the mark, across a rotation."""
        counts: Counter[tuple[str, str]] = Counter()
        for path, offset in self._segments():
            with path.open("rb") as handle:
                handle.seek(offset)
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


def _head(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(512)


def writes(counts: Counter[tuple[str, str]]) -> Counter[tuple[str, str]]:
    """Only the requests that change something."""
    return Counter({key: n for key, n in counts.items() if key[0] not in READ_VERBS})


def per_object_reads(counts: Counter[tuple[str, str]]) -> Counter[tuple[str, str]]:
    """GETs of single objects (LISTs and WATCHes are per kind, not per object)."""
    return Counter({key: n for key, n in counts.items() if key[0] == "get" and not key[1].startswith("/")})
