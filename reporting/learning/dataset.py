"""Training examples from the Parquet telemetry: one per impression of ours, labelled clicked.

Decisions are joined with their outcomes by the server's decision id. An example is a slot
one of our line items filled and that was shown (an `imp` outcome), not test traffic; its
label is whether a click followed. Files are read through the `telemetry` storage (local or
S3 alike) by partition, only the hours of the window asked for (outcomes one hour further,
for clicks that come after the hour turns), and joined with DuckDB in memory.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa

from reporting.telemetry.files import read_table, walk
from reporting.telemetry.schema import DECISIONS, OUTCOMES

PARTITION = re.compile(r"date=(\d{4}-\d{2}-\d{2})/hour=(\d{1,2})/")
# Clicks counted for a decision this long after its hour (the outcome files read further).
CLICK_LAG = timedelta(hours=1)

JOIN = """
WITH o AS (
    SELECT decision_id,
           count(*) FILTER (WHERE kind = 'imp') AS imps,
           count(*) FILTER (WHERE kind = 'clk') AS clicks,
           coalesce(sum(price_micros) FILTER (WHERE kind IN ('imp', 'clk')), 0)::BIGINT
               AS revenue_nanos
    FROM outcomes WHERE NOT test GROUP BY decision_id
)
SELECT d.decision_id, epoch_ms(d.ts) AS ts_ms, d.placement_id AS placement,
       d.line_item_id AS line_item, d.creative_id AS creative, d.country, d.region,
       d.device_type, d.os,
       d.size, d.format, d.channel, d.hour_of_week AS how, d.content_categories,
       d.keyword_hashes, coalesce(d.propensity, 1.0) AS propensity,
       o.clicks > 0 AS clicked, o.revenue_nanos
FROM decisions d JOIN o USING (decision_id)
WHERE d.filled AND d.line_item_id <> 0 AND NOT d.test AND o.imps > 0
  AND d.ts >= $start AND d.ts < $end
ORDER BY d.ts, d.decision_id
"""


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M} UTC"


def windows(now: datetime, train_days: int, holdout_days: int) -> tuple[Window, Window]:
    """The training window and the held-out LATER window right after it, ending at the
    last whole hour before `now`."""
    end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    split = end - timedelta(days=holdout_days)
    return Window(split - timedelta(days=train_days), split), Window(split, end)


def _hour_of(name: str) -> datetime | None:
    match = PARTITION.search(name)
    if match is None:
        return None
    day = datetime.strptime(match.group(1), "%Y-%m-%d").replace(tzinfo=UTC)
    return day + timedelta(hours=int(match.group(2)))


def read_dataset(dataset: str, schema: pa.Schema, start: datetime, end: datetime) -> pa.Table:
    """The dataset's files of the hours from `start` (and the hour before) to before `end`."""
    tables = []
    for name in walk(dataset):
        hour = _hour_of(name)
        if hour is not None and start - timedelta(hours=1) < hour < end:
            tables.append(read_table(name))
    if not tables:
        return schema.empty_table()
    # Files of an older schema version lack the later columns: they read as null.
    return pa.concat_tables([schema.empty_table(), *tables], promote_options="default")


def load_examples(window: Window) -> list[dict[str, Any]]:
    """The window's examples, oldest first (keys: `serving.pctr.CONTEXT` and the rest of JOIN)."""
    decisions = read_dataset("decisions", DECISIONS, window.start, window.end)
    outcomes = read_dataset("outcomes", OUTCOMES, window.start, window.end + CLICK_LAG)
    with duckdb.connect() as con:
        con.register("decisions", decisions)
        con.register("outcomes", outcomes)
        relation = con.sql(JOIN, params={"start": window.start, "end": window.end})
        result = relation.to_arrow_table()
    rows: list[dict[str, Any]] = result.to_pylist()
    return rows
