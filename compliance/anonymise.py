"""Reducing what identifies a person before data leaves the request or is stored.

IPv4 addresses keep their /24 network and IPv6 their /56 (what Prebid Server and the
IAB's guidance use); coordinates are rounded to two decimals (about 1 km), which OpenRTB
calls "coarse" geo. Anything that does not parse is dropped rather than passed on.
"""

import ipaddress
from functools import lru_cache

IPV4_PREFIX = 24
IPV6_PREFIX = 56
COARSE_DECIMALS = 2


_V4_MASK = (2**32 - 1) ^ (2 ** (32 - IPV4_PREFIX) - 1)
_V6_MASK = (2**128 - 1) ^ (2 ** (128 - IPV6_PREFIX) - 1)


def truncate_ip(ip: str | None) -> str | None:
    """The address with its host part zeroed: 203.0.113.77 → 203.0.113.0; None if invalid."""
    if not ip:
        return None
    return _truncate(ip.strip())


@lru_cache(maxsize=4096)
def _truncate(ip: str) -> str | None:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if address.version == 4:
        return str(ipaddress.IPv4Address(int(address) & _V4_MASK))
    return str(ipaddress.IPv6Address(int(address) & _V6_MASK))


def coarse_coordinate(value: float | None) -> float | None:
    return None if value is None else round(value, COARSE_DECIMALS)
