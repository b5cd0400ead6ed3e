"""The operator's asynchronous Kubernetes client: raw JSON over httpx.

kopf watches the operator's own kinds; this client watches the children and does the reads and writes the
reconcilers need. It stays off
the official `kubernetes` client on purpose: no generated models in memory, one pooled HTTP/1.1
connection set, 429 `Retry-After` honoured, and a client-side rate limit.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import tempfile
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

Obj = dict[str, Any]
SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class ApiError(Exception):
    """A non-2xx answer from the API server; `status` and `reason` say which."""

    def __init__(self, status: int, body: str) -> None:
        self.status = status
        try:
            parsed = json.loads(body)
            self.reason, message = parsed.get("reason", ""), parsed.get("message", body)
        except ValueError:
            self.reason, message = "", body
        super().__init__(f"{status} {message}")


@dataclass(frozen=True)
class Connection:
    """Where the API server is and how to authenticate (client certificate or bearer token)."""

    server: str
    ca_file: str | None = None
    ca_data: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    token: str | None = None
    insecure: bool = False

    def ssl_context(self) -> ssl.SSLContext | bool:
        """TLS settings for httpx."""
        if self.insecure:
            return False
        context = ssl.create_default_context(cafile=self.ca_file, cadata=self.ca_data)
        if self.cert_file and self.key_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


def _materialise(data_b64: str, suffix: str) -> str:
    # ssl needs files for client certificates; kubeconfigs may embed them instead.
    handle = tempfile.NamedTemporaryFile(prefix="mlops-kube-", suffix=suffix, delete=False)  # noqa: SIM115
    with handle:
        handle.write(base64.b64decode(data_b64))
    os.chmod(handle.name, 0o600)
    return handle.name


def connection_from_kubeconfig(path: Path, context_name: str | None = None) -> Connection:
    """A context of a kubeconfig, the current one unless named (file references or embedded data, cert or token)."""
    config = yaml.safe_load(path.read_text())
    wanted = context_name or config["current-context"]
    context = next((c["context"] for c in config["contexts"] if c["name"] == wanted), None)
    if context is None:
        raise ValueError(f"kubeconfig {path} has no context {wanted!r}")
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
    user: dict[str, Any] = next((u["user"] for u in config.get("users", []) if u["name"] == context.get("user")), {})
    base = path.parent

    def file_of(key: str, data_key: str, suffix: str, section: dict[str, Any]) -> str | None:
        if section.get(key):
            return str((base / section[key]).resolve())
        if section.get(data_key):
            return _materialise(section[data_key], suffix)
        return None

    ca_data = cluster.get("certificate-authority-data")
    return Connection(
        server=cluster["server"],
        ca_file=str((base / cluster["certificate-authority"]).resolve())
        if cluster.get("certificate-authority")
        else None,
        ca_data=base64.b64decode(ca_data).decode() if ca_data else None,
        cert_file=file_of("client-certificate", "client-certificate-data", ".crt", user),
        key_file=file_of("client-key", "client-key-data", ".key", user),
        token=user.get("token"),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
    )


def connection_from_env() -> Connection:
    """In-cluster service account when running in a pod, else $KUBECONFIG or ~/.kube/config."""
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
    if host and port and (SA_DIR / "token").exists():
        return Connection(
            server=f"https://{host}:{port}",
            ca_file=str(SA_DIR / "ca.crt"),
            token=(SA_DIR / "token").read_text().strip(),
        )
    path = Path(os.environ.get("KUBECONFIG", str(Path.home() / ".kube" / "config"))).expanduser()
    return connection_from_kubeconfig(path)


class RateLimiter:
    """A token bucket: at most `rate` requests per second on average, bursts up to `burst`."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self.tokens, self.updated = float(burst), time.monotonic()
        self.lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait for a token."""
        async with self.lock:
            now = time.monotonic()
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens < 1:
                await asyncio.sleep((1 - self.tokens) / self.rate)
                self.updated = time.monotonic()
                self.tokens = 1
            self.tokens -= 1


class Kube:
    """Get, list, create, patch and delete raw objects by API path."""

    def __init__(self, conn: Connection, qps: float = 20.0, burst: int = 40, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {conn.token}"} if conn.token else {}
        self._http = httpx.AsyncClient(
            base_url=conn.server,
            verify=conn.ssl_context(),
            timeout=timeout,
            headers=headers,
            limits=httpx.Limits(max_connections=8, max_keepalive_connections=8),
        )
        self._limiter = RateLimiter(qps, burst)
        # Watches hold their connection for minutes: a pool of their own, so they never starve the requests'.
        self._watches = httpx.AsyncClient(
            base_url=conn.server,
            verify=conn.ssl_context(),
            timeout=timeout,
            headers=headers,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=0),
        )

    async def aclose(self) -> None:
        """Release connections."""
        await self._http.aclose()
        await self._watches.aclose()

    async def watch(
        self, path: str, resource_version: str, selector: str = "", timeout_seconds: int = 60
    ) -> AsyncGenerator[tuple[str, Obj], None]:
        """Watch a collection from `resource_version`: (type, object) for each event, bookmarks included, until the
        server ends the stream (after `timeout_seconds`); an answer of 410 Gone or another error raises ApiError."""
        params: dict[str, Any] = {
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": timeout_seconds,
        }
        if selector:
            params["labelSelector"] = selector
        await self._limiter.acquire()
        # A stream silent past the server's own timeout is a dead connection (they are known to go quiet).
        limits = httpx.Timeout(self._watches.timeout.connect, read=timeout_seconds + 15.0)
        async with self._watches.stream("GET", path, params=params, timeout=limits) as response:
            if response.status_code >= 400:
                raise ApiError(response.status_code, (await response.aread()).decode(errors="replace"))
            async for line in response.aiter_lines():
                if line.strip():
                    event = json.loads(line)
                    yield str(event.get("type")), dict(event.get("object") or {})

    async def request(
        self, method: str, path: str, *, body: Any = None, params: dict[str, Any] | None = None, content_type: str = ""
    ) -> Obj:
        """One request; 429 answers are retried after their Retry-After; other errors raise ApiError."""
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type or "application/json"}
        for _ in range(6):
            await self._limiter.acquire()
            response = await self._http.request(method, path, content=data, params=params, headers=headers)
            if response.status_code == 429:
                await asyncio.sleep(min(float(response.headers.get("Retry-After", "1")), 30.0))
                continue
            if response.status_code >= 400:
                raise ApiError(response.status_code, response.text)
            return response.json() if response.content else {}
        raise ApiError(429, "the API server kept answering 429 Too Many Requests")

    async def get(self, path: str, **params: Any) -> Obj:
        """GET an object or a list."""
        return await self.request("GET", path, params=params or None)

    async def get_or_none(self, path: str) -> Obj | None:
        """GET an object; None when it does not exist."""
        try:
            return await self.get(path)
        except ApiError as error:
            if error.status == 404:
                return None
            raise

    async def create(self, collection: str, body: Obj) -> Obj | None:
        """POST a new object; None when one of that name already exists (creates are idempotent by name)."""
        try:
            return await self.request("POST", collection, body=body)
        except ApiError as error:
            if error.status == 409 and error.reason == "AlreadyExists":
                return None
            raise

    async def merge_patch(self, path: str, body: Obj) -> Obj:
        """PATCH with a JSON merge patch (put metadata.resourceVersion in it for optimistic locking)."""
        return await self.request("PATCH", path, body=body, content_type="application/merge-patch+json")

    async def delete(self, path: str, propagation: str = "Background", uid: str | None = None) -> None:
        """DELETE, with the given propagation policy (and only the object with `uid`, if given); a missing object
        is not an error."""
        body: Obj = {"propagationPolicy": propagation}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            await self.request("DELETE", path, body=body)
        except ApiError as error:
            if error.status != 404:
                raise


def custom_path(group: str, version: str, plural: str, namespace: str, name: str | None = None) -> str:
    """The API path of a namespaced custom object (or its collection)."""
    base = f"/apis/{group}/{version}/namespaces/{namespace}/{plural}"
    return f"{base}/{name}" if name else base


def job_path(namespace: str, name: str | None = None) -> str:
    """The API path of a Job (or the namespace's Job collection)."""
    base = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    return f"{base}/{name}" if name else base
