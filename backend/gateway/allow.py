"""Which webhook targets are allowed: the ``OUTPOST_WEBHOOK_ALLOW`` setting.

The setting is a comma-separated list of host names (``hooks.example.com``, or
``*.example.com`` for its subdomains) and IP addresses or networks (``127.0.0.1``,
``10.1.0.0/16``). Empty (the default) allows no target at all. A URL is allowed when:

- its scheme is http or https and it has a host;
- its host is named by the list (a name entry, or an IP literal inside a network entry);
- every address its host resolves to is public, or lies inside a network the list names
  explicitly: a name entry never opens a private, loopback, link-local or otherwise
  reserved address (a public name that resolves to 127.0.0.1 or 169.254.169.254 is refused).

It is checked at registration and again before every try, so a name that later resolves
somewhere private is refused then.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from backend.gateway.errors import TargetRefused

__all__ = ["AllowList"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class AllowList:
    names: tuple[str, ...]
    networks: tuple[Network, ...]

    @classmethod
    def parse(cls, setting: str) -> AllowList:
        names: list[str] = []
        networks: list[Network] = []
        for entry in (e.strip().lower() for e in setting.split(",")):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                names.append(entry.rstrip("."))
        return cls(tuple(names), tuple(networks))

    def describe(self) -> str:
        entries = [*self.names, *(str(n) for n in self.networks)]
        return ", ".join(entries) if entries else "nothing (OUTPOST_WEBHOOK_ALLOW is empty)"

    async def check(self, url: str) -> None:
        """TargetRefused unless ``url`` may receive webhooks (see the module docstring)."""
        host, port = self._host_of(url)
        literal = _address(host)
        if literal is not None:
            if not self._in_networks(literal):
                raise TargetRefused(self._refusal(url, f"{host} is not on the allow-list"))
            return
        if not any(_name_matches(host, name) for name in self.names):
            raise TargetRefused(self._refusal(url, f"{host} is not on the allow-list"))
        for found in await _resolve(host, port, url):
            if not found.is_global and not self._in_networks(found):
                raise TargetRefused(
                    self._refusal(
                        url,
                        f"{host} resolves to {found}, a private or reserved address "
                        "(name it as an address or network in the allow-list to allow it)",
                    )
                )

    def _host_of(self, url: str) -> tuple[str, int]:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise TargetRefused(f"webhook URL {url!r} is not a URL: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TargetRefused(f"webhook URL {url!r} must be http:// or https:// with a host")
        if parts.username or parts.password:
            raise TargetRefused(f"webhook URL {url!r} must not carry a user or password")
        return parts.hostname.lower().rstrip("."), port or (443 if parts.scheme == "https" else 80)

    def _in_networks(self, address: Address) -> bool:
        return any(address in network for network in self.networks)

    def _refusal(self, url: str, why: str) -> str:
        return f"webhook target {url} refused: {why}; allowed: {self.describe()}"


def _address(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _name_matches(host: str, entry: str) -> bool:
    if entry.startswith("*."):
        return host.endswith(entry[1:]) and host != entry[2:]
    return host == entry


async def _resolve(host: str, port: int, url: str) -> list[Address]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise TargetRefused(
            f"webhook target {url} refused: {host} does not resolve ({exc})"
        ) from None
    found: list[Address] = []
    for info in infos:
        address = _address(str(info[4][0]).split("%")[0])
        if address is not None:
            found.append(address)
    if not found:
        raise TargetRefused(f"webhook target {url} refused: {host} resolves to no address")
    return found
