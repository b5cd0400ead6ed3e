"""Per-worker limits: requests in flight (load shedding), body size, and content type.

Shedding is a counter, not a queue: a request that finds `limit` requests admitted and unanswered
gets 503 with Retry-After at once, so under overload clients see fast refusals they can retry
elsewhere instead of a latency that grows with the backlog.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

JSON_TYPES = ("application/json",)


class InflightLimiter:
    """A bounded count of admitted requests; the event loop is single-threaded, so no lock."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.inflight = 0

    def try_acquire(self) -> bool:
        """Admit one request if below the limit."""
        if self.inflight >= self.limit:
            return False
        self.inflight += 1
        return True

    def release(self) -> None:
        """An admitted request was answered."""
        self.inflight -= 1


class BodyTooLargeError(Exception):
    """The request body exceeds the limit (413)."""


class ClientGoneError(Exception):
    """The client disconnected before sending the whole body."""


def header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of a header (ASGI names are lower-case)."""
    for key, value in headers:
        if key == name:
            return value
    return None


def declared_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    """Content-Length when present and valid."""
    raw = header(headers, b"content-length")
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def json_content_type(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether the body is declared JSON (or undeclared, as curl and some clients send it)."""
    raw = header(headers, b"content-type")
    if raw is None:
        return True
    media = raw.split(b";", 1)[0].strip().lower().decode("latin-1")
    return media in JSON_TYPES or media.endswith("+json") or media == ""


async def read_body(receive: Callable[[], Awaitable[dict[str, Any]]], limit: int) -> bytes:
    """The whole request body, refusing more than `limit` bytes without buffering them."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGoneError
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
