"""The client address of a request (SPEC section 6).

It is the socket peer, unless the peer is a trusted proxy (``OUTPOST_TRUSTED_PROXIES``):
then it is the right-most ``X-Forwarded-For`` hop that is not a trusted proxy, the first
address that no proxy of ours vouches for. Hops to the left of it were written by the
client and are never believed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

__all__ = ["ClientAddresses"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

IPV6_CLIENT_PREFIX = 64
"""The IPv6 network one client is counted by: the usual size handed to one host."""

UNKNOWN = "unknown"
"""The address of a request with no socket peer (a Unix socket, a test client)."""


class ClientAddresses:
    def __init__(self, trusted_proxies: str | Iterable[str] = "") -> None:
        entries = (
            trusted_proxies.split(",") if isinstance(trusted_proxies, str) else trusted_proxies
        )
        self._trusted: list[Network] = []
        for entry in (e.strip() for e in entries):
            if not entry:
                continue
            try:
                self._trusted.append(ipaddress.ip_network(entry, strict=False))
            except ValueError as exc:
                raise ValueError(
                    f"OUTPOST_TRUSTED_PROXIES: {entry!r} is no address or network (CIDR)"
                ) from exc

    def of(self, scope: Any) -> str:
        """The client of a request as the limits count it: an IPv4 address (IPv4-mapped
        IPv6 as IPv4), or an IPv6 address's /64 network. One host is usually given a whole
        /64 and may use any address in it, so keying by the address would let it change
        address at every request and never meet a per-address limit."""
        address = self._resolve(scope)
        if address is None:
            return UNKNOWN
        if isinstance(address, ipaddress.IPv6Address):
            return str(ipaddress.IPv6Network((address, IPV6_CLIENT_PREFIX), strict=False))
        return str(address)

    def is_loopback(self, scope: Any) -> bool:
        """Does the request come from this host? Not if it came through a proxy we do not
        trust (it carries ``X-Forwarded-For``): that proxy may well run on this host."""
        peer = _peer(scope)
        if peer is None:
            return False
        if not self._is_trusted(peer) and _forwarded_for(scope):
            return False
        address = self._resolve(scope)
        return address is not None and address.is_loopback

    def _resolve(self, scope: Any) -> Address | None:
        peer = _peer(scope)
        if peer is None or not self._is_trusted(peer):
            return peer
        client = peer
        for hop in reversed(_forwarded_for(scope)):
            try:
                address = _normalized(ipaddress.ip_address(hop))
            except ValueError:
                break  # not written by a proxy of ours: believe nothing further left
            client = address
            if not self._is_trusted(address):
                break
        return client

    def _is_trusted(self, address: Address) -> bool:
        return any(address in network for network in self._trusted)


def _peer(scope: Any) -> Address | None:
    client = scope.get("client")
    if not client:
        return None
    try:
        return _normalized(ipaddress.ip_address(client[0]))
    except ValueError:
        return None


def _normalized(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _forwarded_for(scope: Any) -> list[str]:
    """Every hop of every ``X-Forwarded-For`` header, in order, left to right."""
    hops: list[str] = []
    for name, value in scope.get("headers", ()):
        if name.lower() == b"x-forwarded-for":
            hops += [h.strip() for h in value.decode("latin-1").split(",") if h.strip()]
    return hops
