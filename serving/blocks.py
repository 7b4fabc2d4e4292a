"""Advertiser-domain blocks (`badv`), one rule for our own line items and external buyers.

OpenRTB gives `badv` as a list of domains and says no more; we follow what exchanges do:
comparison is case-insensitive and ignores a trailing dot, a blocked domain blocks its
subdomains (`brand.example` blocks `shop.brand.example`), and an ad whose advertiser domain
is unknown cannot be checked, so under any `badv` it is blocked (OpenRTB loss 205).

The work is split so the hot path does almost none: a creative's domains are turned into
every suffix they can be blocked by once, when its snapshot is decoded (`domain_keys`), the
request's `badv` is normalised once when the request is read (`normalise_badv`), and the
check itself is one set intersection (`adomain_blocked`).
"""

from collections.abc import Collection, Iterable


def normalise_domain(domain: str) -> str:
    return domain.strip().lower().rstrip(".")


def normalise_badv(badv: Iterable[str]) -> frozenset[str]:
    """A request's blocked domains, in the form `domain_keys` produces."""
    return frozenset(d for d in map(normalise_domain, badv) if d)


def domain_keys(adomain: Iterable[str]) -> frozenset[str]:
    """Every domain whose block blocks one of `adomain`: each domain and its parents."""
    keys: set[str] = set()
    for domain in adomain:
        labels = normalise_domain(domain).split(".")
        keys.update(".".join(labels[i:]) for i in range(len(labels)) if labels[i])
    return frozenset(keys)


def adomain_blocked(keys: Collection[str], badv: frozenset[str]) -> bool:
    """Whether an ad with these `domain_keys` is blocked by a normalised `badv`."""
    if not badv:
        return False
    return not keys or not badv.isdisjoint(keys)
