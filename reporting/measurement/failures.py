"""Creative failure rate by creative kind and error code: ingest counts every creative error
event per hour, line item, creative and code (`CreativeErrorHourly`); the report divides
them by the impressions of creatives of the same kind (`CreativeHourly`) over the period.
"""

from collections import defaultdict
from datetime import datetime
from typing import Any

from django.db.models import QuerySet, Sum

from creatives.models import Creative, CreativeKind
from reporting.measurement.upsert import add_rows
from reporting.models import CreativeErrorHourly
from reporting.reports.tables import percent
from reporting.stream import OWNER, hour_of, lock_order
from serving.events import Event

ErrorKey = tuple[datetime, int, int, str]

# What the VAST 4 error codes (and our render-failure beacons, which reuse them) mean.
MEANINGS = {
    "100": "XML parsing error", "101": "VAST schema validation error",
    "102": "VAST version not supported", "200": "Trafficking error",
    "201": "Unexpected linearity", "202": "Unexpected duration", "203": "Unexpected size",
    "300": "Wrapper error", "301": "Timeout of the VAST URI", "302": "Wrapper limit reached",
    "303": "No VAST response after wrappers", "400": "Linear error",
    "401": "File not found", "402": "Timeout loading the media", "403": "No supported media",
    "405": "Problem displaying the media", "500": "Non-linear ad error",
    "600": "Companion ad error", "900": "Undefined error", "901": "VPAID error",
}  # fmt: skip


def aggregate_errors(events: list[Event]) -> dict[ErrorKey, tuple[int, int, int]]:
    """(hour, line item, creative, code) -> (campaign, advertiser, errors) of "err" events."""
    counts: dict[ErrorKey, tuple[int, int, int]] = {}
    for e in events:
        if e.t == "err" and e.li:
            key = (hour_of(e.ts), e.li, e.cr, e.r[:32])
            n = counts.get(key, (0, 0, 0))[2]
            counts[key] = (e.cp, e.adv, n + 1)
    return counts


def write_errors(counts: dict[ErrorKey, tuple[int, int, int]]) -> None:
    add_rows(
        CreativeErrorHourly, ("hour", "line_item_id", "creative_id", "code"),
        OWNER, ("errors",),
        [(*key, *counts) for key, counts in lock_order(counts)],
    )  # fmt: skip


def creative_failures(
    errors: QuerySet[Any], impressions: QuerySet[Any], start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Rows of (kind, code): errors, the impressions of that kind, failure rate (errors /
    impressions, %); most errors first within each kind. `errors` and `impressions` are the
    scoped `CreativeErrorHourly` and `CreativeHourly` rows."""
    period = {"hour__gte": start, "hour__lt": end}
    failed = list(
        errors.filter(**period).values("creative_id", "code").annotate(n=Sum("errors")).order_by()
    )
    shown = list(
        impressions.filter(**period).values("creative_id").annotate(n=Sum("impressions"))
        .order_by()
    )  # fmt: skip
    ids = {r["creative_id"] for r in failed} | {r["creative_id"] for r in shown}
    kinds = dict(Creative.objects.filter(pk__in=ids).values_list("pk", "kind"))
    by_kind: dict[str, int] = defaultdict(int)
    for r in shown:
        by_kind[kinds.get(r["creative_id"], "")] += r["n"] or 0
    counted: dict[tuple[str, str], int] = defaultdict(int)
    for r in failed:
        counted[(kinds.get(r["creative_id"], ""), r["code"])] += r["n"] or 0
    labels = dict(CreativeKind.choices)
    rows: list[dict[str, Any]] = [
        {
            "kind": kind,
            "kind_label": labels.get(kind, "(creative deleted)"),
            "code": code,
            "meaning": MEANINGS.get(code, "(no code)" if not code else "Other"),
            "errors": n,
            "impressions": by_kind.get(kind, 0),
            "failure_rate": percent(n, by_kind.get(kind, 0)),
        }
        for (kind, code), n in counted.items()
    ]
    rows.sort(key=lambda r: (r["kind"], -r["errors"], r["code"]))
    return rows
