"""Who is asking: the client's address behind trusted proxies, and which networks may do what.

`X-Forwarded-*` headers are whatever the client wrote unless a proxy we run wrote them, so they
count only when the connection comes from a configured proxy (`[general] trusted_proxies`).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Mapping

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Networks:
    """A set of CIDRs; `address in networks` for a textual address (False when unparsable)."""

    def __init__(self, cidrs: Iterable[str]) -> None:
        self._networks: list[Network] = [ipaddress.ip_network(c, strict=False) for c in cidrs]

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str) or not self._networks:
            return False
        try:
            ip = ipaddress.ip_address(address.strip().strip("[]"))
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip.version == net.version and ip in net for net in self._networks)

    def __bool__(self) -> bool:
        return bool(self._networks)


def client_address(peer: str | None, headers: Mapping[str, str], proxies: Networks) -> str:
    """The address of the client: the peer, or behind trusted proxies the first untrusted hop.

    `X-Forwarded-For` is read right to left (each proxy appends the address it saw), skipping
    our own proxies; the first address that is not one of them is the client. Spoofed entries a
    client put at the left are never reached.
    """
    address = peer or ""
    if address not in proxies:
        return address
    hops = [hop.strip() for hop in headers.get("x-forwarded-for", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        address = hop
        if hop not in proxies:
            break
    return address


PRIVATE_TOKEN_ENV = "VC_GENERAL_PRIVATE_TOKEN"


def private_headers(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Headers for a node's private paths (`/calls`, `/metrics`) from a client: the bearer token
    of `VC_GENERAL_PRIVATE_TOKEN` when set (the node's own variable), else none (loopback)."""
    token = (os.environ if environ is None else environ).get(PRIVATE_TOKEN_ENV, "")
    return {"Authorization": f"Bearer {token}"} if token else {}
