"""Choices the targeting controls offer: countries and regions (pycountry), device types and
channels (the validators' lists), IAB tier-1 categories, and the sizes the inventory sells."""

from functools import cache

import pycountry

from campaigns.models import Placement
from campaigns.validators import CHANNELS, DEVICE_TYPES

# IAB Content Taxonomy 1.0, tier 1.
IAB_TIER1 = {
    "IAB1": "Arts & entertainment", "IAB2": "Automotive", "IAB3": "Business",
    "IAB4": "Careers", "IAB5": "Education", "IAB6": "Family & parenting",
    "IAB7": "Health & fitness", "IAB8": "Food & drink", "IAB9": "Hobbies & interests",
    "IAB10": "Home & garden", "IAB11": "Law, government & politics", "IAB12": "News",
    "IAB13": "Personal finance", "IAB14": "Society", "IAB15": "Science", "IAB16": "Pets",
    "IAB17": "Sports", "IAB18": "Style & fashion", "IAB19": "Technology & computing",
    "IAB20": "Travel", "IAB21": "Real estate", "IAB22": "Shopping",
    "IAB23": "Religion & spirituality", "IAB24": "Uncategorized",
    "IAB25": "Non-standard content", "IAB26": "Illegal content",
}  # fmt: skip
CHANNEL_LABELS = {
    "web": "Web", "app": "Apps", "ctv": "Connected TV", "voice": "Voice assistants",
    "dooh": "Digital out-of-home",
}  # fmt: skip
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@cache
def countries() -> list[tuple[str, str]]:
    return sorted(((c.alpha_2, c.name) for c in pycountry.countries), key=lambda c: c[1])


@cache
def country_names() -> dict[str, str]:
    return dict(countries())


def regions_of(country_codes: list[str]) -> list[tuple[str, str]]:
    """ISO 3166-2 subdivisions of the given countries, by name."""
    out: list[tuple[str, str]] = []
    for code in country_codes:
        subdivisions = pycountry.subdivisions.get(country_code=code) or []
        out += sorted(((s.code, f"{s.name} ({s.code})") for s in subdivisions), key=lambda s: s[1])
    return out


def region_name(code: str) -> str:
    subdivision = pycountry.subdivisions.get(code=code)
    return subdivision.name if subdivision is not None else code


def device_types() -> list[tuple[int, str]]:
    return sorted(DEVICE_TYPES.items())


def channels() -> list[tuple[str, str]]:
    return [(c, CHANNEL_LABELS.get(c, c)) for c in CHANNELS]


def inventory_sizes(placements: list[Placement]) -> list[str]:
    """Every size the active placements sell, smallest area first."""
    sizes = {s for p in placements for s in p.sizes}

    def area(size: str) -> tuple[int, str]:
        w, h = size.split("x")
        return int(w) * int(h), size

    return sorted(sizes, key=area)
