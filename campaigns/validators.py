"""Validation of targeting and delivery settings, each error naming what is wrong."""

import re
import zoneinfo
from collections.abc import Callable
from typing import Any

import pycountry
from django.core.exceptions import ValidationError

SIZE_RE = re.compile(r"^[1-9][0-9]{0,3}x[1-9][0-9]{0,3}$")
# IAB Content Taxonomy 1.0: tier-1 "IAB7", tier-2 "IAB7-39".
CATEGORY_RE = re.compile(r"^IAB([1-9]|1[0-9]|2[0-6])(-[1-9][0-9]?)?$")
TIME_RE = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$")
# AdCOM 1.0 device types.
DEVICE_TYPES = {
    1: "Mobile/tablet",
    2: "Personal computer",
    3: "Connected TV",
    4: "Phone",
    5: "Tablet",
    6: "Connected device",
    7: "Set-top box",
    8: "OOH device",
}
CHANNELS = ("web", "app", "ctv", "voice", "dooh")
CAP_PERIODS = ("minute", "hour", "day", "lifetime")


def _list_of(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValidationError(f"Give a list of {what}.")
    return value


def _reject(bad: list[Any], message: Callable[[str], str]) -> None:
    if bad:
        raise ValidationError(message(", ".join(map(str, bad))))


def validate_sizes(value: object) -> None:
    """Sizes are a non-empty list of "WIDTHxHEIGHT" strings such as "300x250"."""
    sizes = _list_of(value, "sizes")
    if not sizes:
        raise ValidationError("Give at least one size, like 300x250.")
    _reject(
        [s for s in sizes if not isinstance(s, str) or not SIZE_RE.match(s)],
        lambda bad: f"Sizes must look like 300x250; not {bad}.",
    )


def validate_countries(value: object) -> None:
    codes = _list_of(value, "ISO 3166-1 alpha-2 country codes")
    _reject(
        [c for c in codes if not isinstance(c, str) or pycountry.countries.get(alpha_2=c) is None],
        lambda bad: f"Unknown ISO 3166-1 alpha-2 country code: {bad}.",
    )


def validate_regions(value: object) -> None:
    codes = _list_of(value, "ISO 3166-2 region codes such as US-CA")
    _reject(
        [c for c in codes if not isinstance(c, str) or pycountry.subdivisions.get(code=c) is None],
        lambda bad: f"Unknown ISO 3166-2 region code: {bad}.",
    )


def validate_device_types(value: object) -> None:
    types = _list_of(value, "OpenRTB device types")
    _reject(
        [t for t in types if t not in DEVICE_TYPES or isinstance(t, bool)],
        lambda bad: f"Unknown OpenRTB device type: {bad} (use 1 to 8).",
    )


def validate_channels(value: object) -> None:
    channels = _list_of(value, "channels")
    _reject(
        [c for c in channels if c not in CHANNELS],
        lambda bad: f"Unknown channel: {bad} (use {', '.join(CHANNELS)}).",
    )


def validate_strings(value: object) -> None:
    items = _list_of(value, "strings")
    _reject(
        [s for s in items if not isinstance(s, str) or not s.strip() or len(s) > 200],
        lambda bad: f"Each entry must be text of 1 to 200 characters: {bad}.",
    )


def validate_categories(value: object) -> None:
    codes = _list_of(value, "IAB content categories")
    _reject(
        [c for c in codes if not isinstance(c, str) or not CATEGORY_RE.match(c)],
        lambda bad: f"Unknown IAB content category: {bad} (like IAB7 or IAB7-39).",
    )


def validate_frequency_caps(value: object) -> None:
    """[{"count": 3, "period": "day"}, ...]: at most one cap per period."""
    caps = _list_of(value, "frequency caps")
    seen = set()
    for n, cap in enumerate(caps):
        if not isinstance(cap, dict) or set(cap) != {"count", "period"}:
            raise ValidationError(f"Cap {n + 1} must be {{'count': n, 'period': p}}.")
        count, period = cap["count"], cap["period"]
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValidationError(f"Cap {n + 1}: count must be a whole number of at least 1.")
        if period not in CAP_PERIODS:
            raise ValidationError(f"Cap {n + 1}: period must be one of {', '.join(CAP_PERIODS)}.")
        if period in seen:
            raise ValidationError(f"Cap {n + 1}: there is already a cap per {period}.")
        seen.add(period)


def validate_dayparts(value: object) -> None:
    """[{"days": [0, 1, 2, 3, 4], "start": "07:00", "end": "10:00"}]; Monday is 0."""
    parts = _list_of(value, "dayparts")
    for n, part in enumerate(parts):
        if not isinstance(part, dict) or set(part) != {"days", "start", "end"}:
            raise ValidationError(f"Daypart {n + 1} must have days, start and end.")
        days = part["days"]
        if not isinstance(days, list) or not days or any(d not in range(7) for d in days):
            raise ValidationError(f"Daypart {n + 1}: days are 0 (Monday) to 6 (Sunday).")
        start, end = part["start"], part["end"]
        if not all(isinstance(t, str) and TIME_RE.match(t) for t in (start, end)):
            raise ValidationError(f"Daypart {n + 1}: times look like 07:30.")
        if start >= end:
            raise ValidationError(f"Daypart {n + 1}: the end must be after the start.")


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"Unknown time zone: {value} (use an IANA name like Europe/Paris).")


def validate_currency(value: str) -> None:
    if pycountry.currencies.get(alpha_3=value) is None:
        raise ValidationError(f"Unknown ISO 4217 currency: {value}.")
