"""Where the plugin reads from: the kubeconfig as kubectl finds it, and the few lists and gets it needs.

Read-only on purpose: get and list on the four mlops.dev kinds and on core/v1 Events, nothing else, so the
plugin works with a `view`-style role. Everything here fetches; deciding and rendering live in the pure
modules (lineage, history, why), which take the dicts these functions return.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..api.common import GROUP, VERSION
from ..api.kinds import ALL_KINDS, Kind
from ..kubeapi import SA_DIR, ApiError, Connection, connection_from_kubeconfig, custom_path
from ..localcluster.kubeclient import KubeClient

Obj = dict[str, Any]


class CtlError(Exception):
    """A problem the user can act on (no kubeconfig, unknown kind, nothing by that name): printed, exit 1."""


@dataclass(frozen=True)
class Target:
    """The API server to talk to and the namespace the command is about."""

    connection: Connection
    namespace: str


def kubeconfig_path(explicit: str | None, env: Mapping[str, str]) -> Path | None:
    """--kubeconfig, else the first existing file of $KUBECONFIG, else ~/.kube/config; None if there is none.

    kubectl merges every file of $KUBECONFIG; the plugin reads the first one that exists, which is the file
    that holds the current context in the usual one-file setup.
    """
    if explicit:
        return Path(explicit).expanduser()
    for part in (env.get("KUBECONFIG") or "").split(os.pathsep):
        if part and Path(part).expanduser().exists():
            return Path(part).expanduser()
    home = Path(env.get("HOME") or Path.home()) / ".kube" / "config"
    return home if home.exists() else None


def context_namespace(path: Path, context_name: str | None = None) -> str | None:
    """The namespace of the kubeconfig's current (or named) context, if it names one (`kubectl config
    set-context --current --namespace=...`)."""
    config = yaml.safe_load(path.read_text()) or {}
    wanted = context_name or config.get("current-context")
    for entry in config.get("contexts") or []:
        if entry.get("name") == wanted:
            return (entry.get("context") or {}).get("namespace") or None
    return None


def resolve_target(
    kubeconfig: str | None, namespace: str | None, context: str | None = None, env: Mapping[str, str] = os.environ
) -> Target:
    """Connection and namespace as kubectl would choose them: flags, then the kubeconfig, then in-cluster."""
    path = kubeconfig_path(kubeconfig, env)
    if path is not None:
        if not path.exists():
            raise CtlError(f"kubeconfig {path} does not exist")
        try:
            connection = connection_from_kubeconfig(path, context)
        except ValueError as error:  # no such context
            raise CtlError(str(error)) from None
        return Target(connection, namespace or context_namespace(path, context) or "default")
    if context:
        raise CtlError(f"--context {context} needs a kubeconfig: set $KUBECONFIG or pass --kubeconfig")
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if host and port and (SA_DIR / "token").exists():
        in_pod = (SA_DIR / "namespace").read_text().strip() if (SA_DIR / "namespace").exists() else "default"
        connection = Connection(
            server=f"https://{host}:{port}", ca_file=str(SA_DIR / "ca.crt"), token=(SA_DIR / "token").read_text()
        )
        return Target(connection, namespace or in_pod)
    raise CtlError("no kubeconfig: set $KUBECONFIG or pass --kubeconfig")


def kind_named(text: str) -> Kind:
    """A kind by any name kubectl accepts for it: Kind, plural, singular, short name, or `plural.mlops.dev`."""
    wanted = text.lower().removesuffix(f".{GROUP}")
    for kind in ALL_KINDS:
        if wanted in (kind.kind.lower(), kind.plural, kind.singular, *kind.short_names):
            return kind
    names = ", ".join(k.singular for k in ALL_KINDS)
    raise CtlError(f"unknown kind {text!r}: one of {names} (or their short names)")


class Reader:
    """The plugin's reads: lists of the mlops.dev kinds and Events in one namespace."""

    def __init__(self, client: KubeClient, target: Target) -> None:
        self.client, self.target, self.namespace = client, target, target.namespace

    @classmethod
    def connect(cls, target: Target, timeout: float = 15.0) -> Reader:
        """A reader on a new client for `target` (writers such as the steering commands use `target` too)."""
        return cls(KubeClient(target.connection, timeout=timeout), target)

    def close(self) -> None:
        """Release connections."""
        self.client.close()

    def list_kind(self, kind: Kind) -> list[Obj]:
        """Every object of one kind in the namespace, oldest first."""
        items = self.client.get(custom_path(GROUP, VERSION, kind.plural, self.namespace)).get("items", [])
        for item in items:  # a list's items carry no kind; the pure modules read it from each object
            item.setdefault("kind", kind.kind)
            item.setdefault("apiVersion", f"{GROUP}/{VERSION}")
        return sorted(items, key=lambda o: (o["metadata"].get("creationTimestamp", ""), o["metadata"]["name"]))

    def list_all(self) -> dict[str, list[Obj]]:
        """Every mlops.dev object in the namespace, by kind."""
        return {kind.kind: self.list_kind(kind) for kind in ALL_KINDS}

    def get(self, kind: Kind, name: str) -> Obj | None:
        """One object; None when it does not exist."""
        try:
            obj = self.client.get(custom_path(GROUP, VERSION, kind.plural, self.namespace, name))
        except ApiError as error:
            if error.status == 404:
                return None
            raise
        return obj

    def events(self, name: str | None = None) -> list[Obj]:
        """core/v1 Events in the namespace (about objects of this name, when given); callers match by uid."""
        params = {"fieldSelector": f"involvedObject.name={name}"} if name else {}
        return list(self.client.get(f"/api/v1/namespaces/{self.namespace}/events", **params).get("items", []))
