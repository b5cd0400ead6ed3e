"""Per-worker limits: requests in flight (load shedding), body bytes in flight, body size, and content type.

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


class BytesBudget:
    """A bound on request-body bytes held by one worker at once (bodies being read and being scored).

    With the in-flight limit it bounds memory: many slow or large bodies at once are shed (503) instead
    of growing the worker until the kernel kills it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0

    def try_take(self, size: int) -> bool:
        """Reserve `size` bytes if they fit."""
        if self.in_use + size > self.limit:
            return False
        self.in_use += size
        return True

    def give_back(self, size: int) -> None:
        """Release bytes reserved earlier."""
        self.in_use = max(0, self.in_use - size)


class BudgetExceededError(Exception):
    """The worker holds as many body bytes as its budget allows (503, retry)."""


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


async def read_body(
    receive: Callable[[], Awaitable[dict[str, Any]]], limit: int, budget: BytesBudget | None = None
) -> bytes:
    """The whole request body, refusing more than `limit` bytes without buffering them.

    With a `budget`, every chunk is reserved in it as it arrives; the caller gives back len(body) once the
    request is answered (on an error here, what was reserved is given back before raising)."""
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGoneError
            chunk = message.get("body", b"")
            if size + len(chunk) > limit:
                raise BodyTooLargeError
            if budget is not None and not budget.try_take(len(chunk)):
                raise BudgetExceededError
            size += len(chunk)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
    except BaseException:  # a timeout cancels us too: nothing reserved may leak
        if budget is not None:
            budget.give_back(size)
        raise
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
