"""Ingestion's part: invalid impressions and clicks leave the billed events, counted here.

An event serving judged invalid (`Event.iv`) is kept out of every billed rollup (delivery,
creatives, demand) and out of the billed decisions, and counted per hour, placement, line
item and reason with what it would have cost. A flagged event (`Event.fl`) is billed as
usual and counted here too, under its flag.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db.models import F

from reporting.ivt.models import IvtHourly
from reporting.measurement.upsert import add_rows
from reporting.stream import OWNER, hour_of, lock_order
from serving.events import Event

NANOS = Decimal(1_000_000_000)
JUDGED_KINDS = ("imp", "clk")

Entry = tuple[str, list[Event]]
IvtKey = tuple[datetime, int, int, str]  # hour, placement, line item, reason


@dataclass(slots=True)
class IvtCounts:
    campaign_id: int = 0
    advertiser_id: int = 0
    impressions: int = 0
    clicks: int = 0
    flagged_impressions: int = 0
    flagged_clicks: int = 0
    withheld_nanos: int = 0


def split_invalid(entries: list[Entry]) -> tuple[list[Entry], dict[IvtKey, IvtCounts]]:
    """The entries without their invalid events, and the invalid and flagged counts."""
    counts: dict[IvtKey, IvtCounts] = defaultdict(IvtCounts)
    kept: list[Entry] = []
    for entry_id, events in entries:
        keep = []
        for e in events:
            if e.t in JUDGED_KINDS and (e.iv or e.fl):
                row = counts[(hour_of(e.ts), e.pl, e.li, e.iv or e.fl)]
                row.campaign_id, row.advertiser_id = e.cp, e.adv
                if e.iv:
                    if e.t == "imp":
                        row.impressions += 1
                    else:
                        row.clicks += 1
                    row.withheld_nanos += e.cpm
                    continue
                if e.t == "imp":
                    row.flagged_impressions += 1
                else:
                    row.flagged_clicks += 1
            keep.append(e)
        kept.append((entry_id, keep))
    return kept, counts


def add_ivt(key: IvtKey, c: IvtCounts) -> None:
    """Add counts to their hourly row (inside the caller's transaction)."""
    hour, placement_id, line_item_id, reason = key
    row, _ = IvtHourly.objects.get_or_create(
        hour=hour,
        placement_id=placement_id,
        line_item_id=line_item_id,
        reason=reason[:32],
        currency=settings.SERVING_CURRENCY,
        defaults={"campaign_id": c.campaign_id, "advertiser_id": c.advertiser_id},
    )
    IvtHourly.objects.filter(pk=row.pk).update(
        impressions=F("impressions") + c.impressions,
        clicks=F("clicks") + c.clicks,
        flagged_impressions=F("flagged_impressions") + c.flagged_impressions,
        flagged_clicks=F("flagged_clicks") + c.flagged_clicks,
        withheld=F("withheld") + Decimal(c.withheld_nanos) / NANOS,
    )


def write_ivt(counts: dict[IvtKey, IvtCounts]) -> None:
    """Add a batch's counts to their hourly rows, one statement (inside the caller's
    transaction)."""
    add_rows(
        IvtHourly, ("hour", "placement_id", "line_item_id", "reason", "currency"),
        OWNER, ("impressions", "clicks", "flagged_impressions", "flagged_clicks", "withheld"),
        [
            (hour, placement_id, line_item_id, reason[:32], settings.SERVING_CURRENCY,
             c.campaign_id, c.advertiser_id, c.impressions, c.clicks, c.flagged_impressions,
             c.flagged_clicks, Decimal(c.withheld_nanos) / NANOS)
            for (hour, placement_id, line_item_id, reason), c in lock_order(counts)
        ],
    )  # fmt: skip
