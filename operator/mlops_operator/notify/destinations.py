"""Where a destination's URL and signing key come from, and which URLs the operator may call.

The operator reads no Secret through the API. Secret values are files of the notification Secret the platform
team mounts into the operator pod (chart `notifications.secretName`), named `<namespace>.<key>`: a policy can
name only keys of its own namespace. The kubelet refreshes mounted Secrets, so each delivery reads the file.

The URL is user input on a shared cluster and the operator sits inside it (it reaches the API server, MLflow,
Prometheus and the cloud's metadata address): `notifications.allowedHosts` lists the hosts it may call (exact,
or `*.example.com` for subdomains); empty allows any host. Link-local addresses (the metadata service) are
refused always, and redirects are never followed.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

import httpx

from ..api.notification import Destination


@dataclass(frozen=True)
class SecretFiles:
    """The mounted notification Secret (None: nothing mounted)."""

    directory: Path | None

    def path(self, namespace: str, key: str) -> Path | None:
        """The file of `key` for `namespace` (None: no Secret mounted)."""
        if self.directory is None or "/" in key or key.startswith("."):
            return None
        return self.directory / f"{namespace}.{key}"

    def read(self, namespace: str, key: str) -> bytes | None:
        """The value of `key` for `namespace`, stripped of a trailing newline; None when absent."""
        path = self.path(namespace, key)
        try:
            return path.read_bytes().rstrip(b"\r\n") if path is not None else None
        except OSError:
            return None

    def has(self, namespace: str, key: str) -> bool:
        """True when `key` is mounted for `namespace`."""
        path = self.path(namespace, key)
        return path is not None and path.is_file()


def url_refusal(url: str, allowed_hosts: tuple[str, ...]) -> str | None:
    """Why the operator will not call `url` (None: it may)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "not a URL"
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return "must be http(s)://host[/path]"
    host = parsed.host.lower().rstrip(".")
    try:
        if ipaddress.ip_address(host).is_link_local:
            return f"host {host} is link-local (the metadata address range); never called"
    except ValueError:
        pass  # a name, not an address
    if allowed_hosts and not any(_host_matches(host, pattern) for pattern in allowed_hosts):
        return f"host {host} is not in the chart's notifications.allowedHosts"
    return None


def _host_matches(host: str, pattern: str) -> bool:
    pattern = pattern.strip().lower().rstrip(".")
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


def destination_problems(
    namespace: str, dest: Destination, secrets: SecretFiles, allowed_hosts: tuple[str, ...]
) -> list[str]:
    """What keeps a destination from being delivered to now (empty: nothing)."""
    problems = []
    url = dest.url
    if url is None and dest.url_secret_key is not None:
        mounted = secrets.read(namespace, dest.url_secret_key)
        url = mounted.decode(errors="replace").strip() if mounted else None
    if url is not None:
        refusal = url_refusal(url, allowed_hosts)
        if refusal:  # the URL itself is not shown: from a Secret it is a credential
            field = "url" if dest.url is not None else f"the URL under key {namespace}.{dest.url_secret_key}:"
            problems.append(f"destination {dest.name}: {field} {refusal}")
    for field, key in (("urlSecretKey", dest.url_secret_key), ("signingSecretKey", dest.signing_secret_key)):
        if key is not None and not secrets.has(namespace, key):
            problems.append(
                f"destination {dest.name}: {field} {key!r} is not mounted (key {namespace}.{key} of the chart's "
                "notifications.secretName)"
            )
    return problems
