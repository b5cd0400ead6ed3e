"""What a Dataset source may point at: the cluster's source policy, set by the chart, checked by the worker.

Without a policy (a local run) every supported scheme and host is allowed. The chart passes one as
JSON in MLOPS_SOURCE_POLICY (values `sourcePolicy`): by default no file://, no link-local, metadata,
loopback or cluster pod/service addresses, a byte limit and timeouts, and runs:/ artifacts only of
runs that the same namespace logged. Every refusal names the rule, and nothing of the target's
content reaches status. Limits: a host is resolved and checked before each request (and each
redirect); a DNS answer that changes between the check and the connection (rebinding) is not
caught here — the chart's NetworkPolicy for Jobs is the second line.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import PermanentError

ENV_SOURCE_POLICY = "MLOPS_SOURCE_POLICY"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class SourcePolicy(BaseModel):
    """The rules; the defaults are a local run's (no limits beyond the worker's own)."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    allowed_schemes: list[str] | None = Field(default=None, alias="allowedSchemes")  # None: every supported one
    denied_networks: list[str] = Field(default_factory=list, alias="deniedNetworks")  # CIDRs
    max_bytes: int | None = Field(default=None, alias="maxBytes", ge=1)
    timeout_seconds: float = Field(default=60.0, alias="timeoutSeconds", gt=0)
    max_redirects: int = Field(default=5, alias="maxRedirects", ge=0)
    same_namespace_runs: bool = Field(default=False, alias="sameNamespaceRuns")

    def networks(self) -> list[Network]:
        """The denied networks, parsed."""
        return [ipaddress.ip_network(cidr, strict=False) for cidr in self.denied_networks]


def policy_from_env(env: Mapping[str, str] | None = None) -> SourcePolicy:
    """The policy in MLOPS_SOURCE_POLICY, or the local default; a malformed one is a permanent error."""
    raw = (os.environ if env is None else env).get(ENV_SOURCE_POLICY, "").strip()
    if not raw:
        return SourcePolicy()
    try:
        policy = SourcePolicy.model_validate(json.loads(raw))
        policy.networks()
    except (ValueError, ValidationError) as error:
        raise PermanentError(f"{ENV_SOURCE_POLICY} is not a valid source policy: {error}"[:400]) from error
    return policy


def refused(uri: str, rule: str) -> PermanentError:
    """The error a refused source gives: the rule that refused it, nothing read from the target."""
    return PermanentError(f"source {uri}: refused by the cluster's source policy: {rule}")


def check_scheme(policy: SourcePolicy, uri: str, scheme: str) -> None:
    """Refuse a scheme the policy does not allow."""
    if policy.allowed_schemes is not None and scheme not in policy.allowed_schemes:
        allowed = ", ".join(policy.allowed_schemes) or "none"
        raise refused(uri, f"scheme '{scheme}' is not allowed (sourcePolicy.allowedSchemes: {allowed})")


def check_host(policy: SourcePolicy, uri: str, host: str, port: int) -> None:
    """Refuse a host any of whose addresses lies in a denied network (resolved now, for this request)."""
    networks = policy.networks()
    if not networks:
        return
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror as error:
        raise PermanentError(f"source {uri}: host {host!r} does not resolve ({error.strerror})") from error
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:169.254.169.254 is the metadata address too
        for candidate in (address, mapped) if mapped is not None else (address,):
            for network in networks:
                if candidate.version == network.version and candidate in network:
                    raise refused(uri, f"host {host} resolves to {candidate}, inside denied network {network}")


def check_size(policy: SourcePolicy, uri: str, size: int) -> None:
    """Refuse a source larger than the byte limit (checked as it is read)."""
    if policy.max_bytes is not None and size > policy.max_bytes:
        raise refused(uri, f"it is larger than sourcePolicy.maxBytes ({policy.max_bytes} bytes)")


def check_run_namespace(policy: SourcePolicy, uri: str, run_tags: Mapping[str, Any], namespace: str) -> None:
    """Refuse a run's artifact unless the run was logged for an object of `namespace`."""
    from .. import contract

    owner = run_tags.get(contract.TAG_NAMESPACE)
    if policy.same_namespace_runs and owner != namespace:
        where = f"namespace {owner}" if owner else "no namespace (logged outside the operator)"
        raise refused(uri, f"the run belongs to {where}; only runs of namespace {namespace} may be read")
