"""Which of a line item's index keys the period's requests matched: the targeting part of
"why didn't my line item deliver".

Serving counts opportunities per request key (`RequestKeyHourly`); here they are matched
against each line item's targeting as the index files it (`serving.index._keys`): placement,
slot (banner size or format), country (or the countries of its regions), device type and
channel, an empty list meaning any. Counts narrow axis by axis in that order, so the first
axis that drops to zero is the one to change.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Prefetch, QuerySet, Sum

from campaigns.models import CampaignStatus, LineItem, LineItemStatus
from creatives.models import Creative

# Line items shown at most: the live ones of the organisation, most blocked first.
MAX_LINE_ITEMS = 50

AXES = (
    ("placement", "its placements"),
    ("slot", "its sizes and formats"),
    ("country", "its countries"),
    ("device", "its device types"),
    ("channel", "its channels"),
)


@dataclass(frozen=True)
class Targeting:
    placements: frozenset[int]
    slots: frozenset[str]
    countries: frozenset[str]
    device_types: frozenset[int]
    channels: frozenset[str]

    @classmethod
    def of(cls, li: LineItem) -> "Targeting":
        """The line item as the index files it (prefetched placements and creatives)."""
        slots = set()
        for creative in li.creatives.all():
            if creative.serving_format == "banner":
                if creative.size in li.sizes:
                    slots.add(creative.size)
            else:
                slots.add(creative.serving_format)
        countries = li.countries or sorted({r.split("-", 1)[0] for r in li.regions})
        return cls(
            frozenset(p.pk for p in li.placements.all()),
            frozenset(slots),
            frozenset(countries),
            frozenset(li.device_types),
            frozenset(li.channels),
        )

    def matches(self, key: dict[str, Any]) -> tuple[bool, bool, bool, bool, bool]:
        """Whether the request key matches each axis, in `AXES` order."""
        return (
            not self.placements or key["placement_id"] in self.placements,
            any(s in self.slots for s in key["slots"].split(",")),
            not self.countries or key["country"] in self.countries,
            not self.device_types or key["device_type"] in self.device_types,
            not self.channels or key["channel"] in self.channels,
        )


@dataclass
class Funnel:
    line_item_id: int
    line_item: str
    # Requests matching every axis up to and including each one, in `AXES` order.
    matched: list[int]

    @property
    def steps(self) -> list[dict[str, Any]]:
        before = None
        out = []
        for (axis, label), n in zip(AXES, self.matched, strict=True):
            rejected = 0 if before is None else before - n
            out.append({"axis": axis, "label": label, "matched": n, "rejected": rejected})
            before = n
        return out

    @property
    def blocked_at(self) -> dict[str, Any] | None:
        """The first axis no request matched, after some matched the ones before it."""
        before = None
        for step in self.steps:
            if step["matched"] == 0 and (before is None or before > 0):
                return step
            before = step["matched"]
        return None


def request_keys(rows: QuerySet[Any]) -> list[dict[str, Any]]:
    """The period's opportunities per distinct request key (hours added up)."""
    keys = ("placement_id", "slots", "country", "device_type", "channel")
    return list(rows.values(*keys).annotate(n=Sum("requests")).order_by())


def targeting_funnels(line_items: Iterable[LineItem], keys: list[dict[str, Any]]) -> list[Funnel]:
    """Per line item, how many opportunities matched its targeting axis by axis."""
    out = []
    for li in line_items:
        targeting = Targeting.of(li)
        matched = [0] * len(AXES)
        for key in keys:
            for i, ok in enumerate(targeting.matches(key)):
                if not ok:
                    break
                matched[i] += key["n"]
        out.append(Funnel(li.pk, li.name, matched))
    # Line items blocked somewhere first, then by how few requests reached them.
    out.sort(key=lambda f: (f.blocked_at is None, f.matched[-1], f.line_item))
    return out


def live_line_items(line_items: QuerySet[LineItem]) -> list[LineItem]:
    """Active line items of active campaigns, with what `Targeting.of` reads prefetched."""
    return list(
        line_items.filter(status=LineItemStatus.ACTIVE, campaign__status=CampaignStatus.ACTIVE)
        .prefetch_related("placements", Prefetch("creatives", Creative.objects.servable()))
        .order_by("pk")[:MAX_LINE_ITEMS]
    )


def hourly_funnels(line_items: Iterable[LineItem], rows: QuerySet[Any]) -> list[tuple[Any, Funnel]]:
    """(hour, funnel) per hour with opportunities and per line item: the API's answer."""
    keys = ("hour", "placement_id", "slots", "country", "device_type", "channel")
    by_hour: dict[Any, list[dict[str, Any]]] = {}
    for row in rows.values(*keys).annotate(n=Sum("requests")).order_by("hour"):
        by_hour.setdefault(row["hour"], []).append(row)
    items = list(line_items)
    out = []
    for hour, hour_keys in by_hour.items():
        for funnel in sorted(targeting_funnels(items, hour_keys), key=lambda f: f.line_item_id):
            out.append((hour, funnel))
    return out
