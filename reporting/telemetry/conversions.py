"""Attributed conversions as telemetry rows (dataset `conversions`, docs/telemetry.md).

Written by the attribution job (`reporting.conversions.attribution`) inside the transaction
that stores the `Conversion` rows and advances its watermark: one file per hour of the
conversions' own time, named by the first stream id among its rows. A batch read again after
a crash (nothing committed) writes the same names again, replacing the files; a committed
batch is never read again. So each attributed conversion is in the files once.
"""

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC
from decimal import Decimal
from typing import Any

import pyarrow as pa
from django.conf import settings

from reporting.conversions.models import Attribution, Conversion
from reporting.stream import stream_id
from reporting.telemetry.files import partition, write_table
from reporting.telemetry.schema import CONVERSIONS, SCHEMA_VERSION

MICROS = Decimal(1_000_000)


def _micros(value: Decimal | None) -> int | None:
    return None if value is None else int(value * MICROS)


def row(c: Conversion, campaign_currency: str) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "stream_id": c.stream_id,
        "decision_id": c.decision_id,
        "ts": c.converted_at.astimezone(UTC),
        "touched_at": c.touched_at.astimezone(UTC) if c.touched_at else None,
        "event_name": c.event,
        "attribution": "post_click" if c.attribution == Attribution.CLICK else "post_view",
        "source": c.source,
        "value_micros": _micros(c.value),
        "currency": c.currency or None,
        "attributed_value_micros": _micros(c.attributed_value),
        "attributed_currency": campaign_currency if c.attributed_value is not None else None,
        "placement_id": c.placement_id,
        "line_item_id": c.line_item_id,
        "campaign_id": c.campaign_id,
        "advertiser_id": c.advertiser_id,
        "creative_id": c.creative_id,
        "pseudonymous_id": c.pseudonym or None,
    }


def write_conversions(conversions: Iterable[tuple[Conversion, str]]) -> int:
    """Write the attributed ones of (conversion, campaign currency); returns files written."""
    if not settings.TELEMETRY_ENABLED:
        return 0
    grouped: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for c, currency in conversions:
        if c.attribution == Attribution.NONE or not c.decision_id:
            continue
        when = c.converted_at.astimezone(UTC)
        grouped[(when.strftime("%Y-%m-%d"), when.hour)].append(row(c, currency))
    for (date, hour), batch in grouped.items():
        first = min((r["stream_id"] for r in batch), key=stream_id)
        name = f"{partition('conversions', date, hour)}/part-{first}.parquet"
        write_table(name, pa.Table.from_pylist(batch, schema=CONVERSIONS))
    return len(grouped)
