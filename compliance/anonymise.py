"""Reducing what identifies a person before data leaves the request or is stored.

IPv4 addresses keep their /24 network and IPv6 their /56 (what Prebid Server and the
IAB's guidance use); coordinates are rounded to two decimals (about 1 km), which OpenRTB
calls "coarse" geo. Anything that does not parse is dropped rather than passed on.
"""

import ipaddress

IPV4_PREFIX = 24
IPV6_PREFIX = 56
COARSE_DECIMALS = 2


def truncate_ip(ip: str | None) -> str | None:
    """The address with its host part zeroed: 203.0.113.77 → 203.0.113.0; None if invalid."""
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    prefix = IPV4_PREFIX if address.version == 4 else IPV6_PREFIX
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    return str(network.network_address)


def coarse_coordinate(value: float | None) -> float | None:
    return None if value is None else round(value, COARSE_DECIMALS)
