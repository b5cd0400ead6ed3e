"""A small synchronous Kubernetes REST client over httpx, for the node agent and the cluster tools.

The operator itself uses kopf; this client keeps the agent light (no generated models) and
speaks plain JSON dicts, which is all the agent needs.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ..kubeapi import ApiError, Connection

__all__ = ["ApiError", "Credentials", "KubeClient"]

CORE = "/api/v1"


@dataclass(frozen=True)
class Credentials:
    """Where the API server is and who we are (client-certificate authentication)."""

    server: str
    ca_file: Path
    cert_file: Path
    key_file: Path


class KubeClient:
    """Get, list, watch, create, patch and delete raw objects by URL path."""

    def __init__(self, creds: Credentials | Connection, timeout: float = 30.0) -> None:
        # A Connection (kubeapi) is any kubeconfig a person has: bearer tokens and embedded certificates too.
        verify: ssl.SSLContext | bool
        headers: dict[str, str] = {}
        if isinstance(creds, Connection):
            verify = creds.ssl_context()
            if creds.token:
                headers["Authorization"] = f"Bearer {creds.token}"
        else:
            verify = ssl.create_default_context(cafile=str(creds.ca_file))
            verify.load_cert_chain(str(creds.cert_file), str(creds.key_file))
        self._http = httpx.Client(base_url=creds.server, verify=verify, timeout=timeout, headers=headers)

    def close(self) -> None:
        """Release connections."""
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        """Send one request; honour 429 Retry-After a few times; raise ApiError on failure."""
        data = None if body is None else json.dumps(body)
        for _ in range(5):
            response = self._http.request(
                method, path, content=data, params=params, headers={"Content-Type": content_type}
            )
            if response.status_code == 429:
                time.sleep(float(response.headers.get("Retry-After", "1")))
                continue
            if response.status_code >= 400:
                raise ApiError(response.status_code, response.text)
            return response.json() if response.content else {}
        raise ApiError(429, "too many requests")

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        """GET an object or list."""
        return self.request("GET", path, params=params or None)

    def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST a new object to a collection path."""
        return self.request("POST", path, body=body)

    def merge_patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """PATCH with a JSON merge patch."""
        return self.request("PATCH", path, body=body, content_type="application/merge-patch+json")

    def delete(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """DELETE with optional DeleteOptions."""
        return self.request("DELETE", path, body=body)

    def watch(
        self, path: str, resource_version: str, timeout_seconds: int = 60, **params: Any
    ) -> Iterator[dict[str, Any]]:
        """Yield watch events (`{"type", "object"}`) until the server closes the stream."""
        query = {
            "watch": "1",
            "resourceVersion": resource_version,
            "timeoutSeconds": str(timeout_seconds),
            "allowWatchBookmarks": "true",
            **params,
        }
        with self._http.stream("GET", path, params=query, timeout=timeout_seconds + 10) as response:
            if response.status_code >= 400:
                response.read()
                raise ApiError(response.status_code, response.text)
            for line in response.iter_lines():
                if line:
                    yield json.loads(line)
