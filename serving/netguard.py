"""Which addresses the server may fetch from (SSRF): only public ones, unless allowed.

Buyers' endpoints, their notice URLs (`nurl`, `burl`, `lurl`: text a buyer chose) and the
markup fetched from a `nurl` are requested by our servers, from inside our network. Left
open, a bid could make us GET `http://169.254.169.254/...` (cloud metadata) or an internal
admin port. So every such fetch is checked **after DNS resolution**, on the address actually
connected to: a resolver that filters out refused addresses (a name that resolves to a
private address is refused, and a DNS answer that changes between check and connect cannot
slip through, since the check is the connect's own resolution), and a check of IP literals,
which aiohttp connects to without resolving.

Refused: every address that is not globally routable (`ipaddress.is_global` false):
loopback, RFC 1918 private, link-local (169.254/16 with the metadata service, fe80::/10),
shared (100.64/10), unique-local (fc00::/7), documentation, multicast, reserved and
unspecified ranges, and IPv4-mapped IPv6 forms of any of them. `SERVING_FETCH_ALLOWED_NETWORKS`
lists networks allowed anyway (CIDRs; empty in production; tests allow loopback for their
buyers on 127.0.0.1).
"""

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class RefusedAddress(OSError):
    """The URL's host is, or resolves only to, an address the server may not fetch from."""


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    allowed: tuple[Network, ...] = field(default=())

    @classmethod
    def of(cls, networks: Iterable[str]) -> "FetchPolicy":
        """From CIDR strings; ValueError naming a malformed one."""
        parsed = []
        for text in networks:
            try:
                parsed.append(ipaddress.ip_network(text.strip(), strict=False))
            except ValueError:
                message = f"not a network in SERVING_FETCH_ALLOWED_NETWORKS: {text!r}"
                raise ValueError(message) from None
        return cls(tuple(parsed))

    def allows(self, address: Address) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in network for network in self.allowed):
            return True
        return address.is_global and not address.is_multicast

    def check_literal(self, url: str) -> None:
        """Refuse a URL whose host is an IP literal we may not fetch from (names are checked
        when they resolve, by `GuardedResolver`)."""
        host = urlsplit(url).hostname or ""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return
        if not self.allows(address):
            raise RefusedAddress(f"refused address {address}")


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver with the refused addresses taken out of every answer."""

    def __init__(self, policy: FetchPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self.inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        kept = [r for r in results if self.policy.allows(ipaddress.ip_address(r["host"]))]
        if not kept:
            raise RefusedAddress(f"{host} resolves only to refused addresses")
        return kept

    async def close(self) -> None:
        await self.inner.close()
