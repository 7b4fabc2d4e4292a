"""The process-local snapshot: decoded once per published version, swapped atomically.

Requests read `store.index`, `store.exhausted` and `store.pacing` and never wait on Redis
for them; a background loop checks the published version about once a second and rebuilds
the index in cooperative chunks when it changed. The same read brings the day's exhausted
sets (each campaign's own day, in its time zone), the pacing controller's pass-through
rates and the bid multipliers of dynamic line items. Between two reads, what this process's
own charges learn (a budget reached) is applied at once (`mark_exhausted`).
"""

import asyncio
import gc
import logging
import time
from decimal import Decimal

import msgspec
from redis.asyncio import Redis

from serving import clock
from serving.index import Index, compile_index_async
from serving.keys import RedisKeys, local_day
from serving.snapshot import CampaignSnap, SnapshotHeader
from serving.spend import SpendRecorder, parse_exhausted
from serving.targeting import PacingRates

log = logging.getLogger(__name__)

# A budget this process saw reached stays stopped this long even if a read of the exhausted
# sets that started before the charge does not show it yet.
MARK_SECONDS = 3.0
MULTIPLIER_PLACES = Decimal("0.0001")


RETIRE_AFTER_SECONDS = 3.0  # longer than any request holds an index (buyers' 2 s cap)
RETIRE_SLICE = 2000


async def _retire(index: Index) -> None:
    await asyncio.sleep(RETIRE_AFTER_SECONDS)
    for table in (index.merged, index.lists, index.line_items, index.creatives):
        while table:
            for _ in range(min(RETIRE_SLICE, len(table))):
                table.popitem()
            await asyncio.sleep(0)


class SnapshotStore:
    def __init__(self, redis: Redis, keys: RedisKeys) -> None:
        self.redis = redis
        self.keys = keys
        self.index: Index | None = None
        self._retiring: asyncio.Task[None] | None = None
        self.campaigns: dict[int, CampaignSnap] = {}
        # Campaigns out of budget today; line items out of budget sit in `pacing.exhausted`.
        self.exhausted: frozenset[int] = frozenset()
        # Line item id → pass-through probability from the pacing controller, and more.
        self.pacing: PacingRates = PacingRates()
        self.spend = SpendRecorder(redis, keys, self)
        # What this process's own charges found spent: id -> (when, the local day it is for).
        self._campaign_marks: dict[int, tuple[float, str]] = {}
        self._line_item_marks: dict[int, tuple[float, str]] = {}

    @property
    def version(self) -> int:
        return self.index.version if self.index else 0

    def mark_exhausted(self, day: str, *, campaign_id: int = 0, line_item_id: int = 0) -> None:
        """Stop a campaign or line item in this process now: its budget for `day` (its own
        local day) was reached. A reply that comes back after that day is over is ignored."""
        zone = self.campaigns[campaign_id].time_zone if campaign_id in self.campaigns else "UTC"
        if line_item_id and self.index and line_item_id in self.index.line_items:
            zone = self.index.line_items[line_item_id].time_zone
        if local_day(clock.now(), zone) != day:
            return
        at = time.monotonic()
        if campaign_id and campaign_id not in self.exhausted:
            self._campaign_marks[campaign_id] = (at, day)
            self.exhausted = self.exhausted | {campaign_id}
        if line_item_id and line_item_id not in self.pacing.exhausted:
            self._line_item_marks[line_item_id] = (at, day)
            self.pacing = self.pacing.replace(exhausted=self.pacing.exhausted | {line_item_id})

    def _zones(self) -> tuple[dict[int, str], dict[int, str]]:
        zones = {c.id: c.time_zone for c in self.campaigns.values()}
        index = self.index
        li_zones = (
            {li.id: zones.get(li.campaign_id, li.time_zone) for li in index.line_items.values()}
            if index
            else {}
        )
        return zones, li_zones

    async def refresh(self) -> bool:
        """Load the published snapshot if its version changed; True when it swapped."""
        started_read = time.monotonic()
        zones, li_zones = self._zones()
        now = clock.now()
        day_of_zone = {z: local_day(now, z) for z in {"UTC", *zones.values()}}
        days = sorted(set(day_of_zone.values()))
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(self.keys.snapshot_version)
        pipe.hgetall(self.keys.pacing_rates)
        pipe.hgetall(self.keys.bid_multipliers)
        for day in days:
            pipe.smembers(self.keys.exhausted(day))
        raw_version, rates, multipliers, *members = await pipe.execute()
        campaigns, line_items = parse_exhausted(
            dict(zip(days, members, strict=True)), zones, li_zones, day_of_zone
        )
        self.exhausted = campaigns | self._recent(
            self._campaign_marks, started_read, zones, day_of_zone
        )
        self.pacing = PacingRates(
            {int(k): float(v) for k, v in rates.items()},
            exhausted=line_items
            | self._recent(self._line_item_marks, started_read, li_zones, day_of_zone),
            multipliers={
                int(k): Decimal(v.decode() if isinstance(v, bytes) else v).quantize(
                    MULTIPLIER_PLACES
                )
                for k, v in multipliers.items()
            },
        )
        version = int(raw_version or 0)
        if version == 0 or version == self.version:
            return False
        data = await self.redis.get(self.keys.snapshot_data(version))
        if data is None:  # expired between the two reads: the next tick sees a newer one
            return False
        raw = data if isinstance(data, bytes) else data.encode()
        started = time.perf_counter()
        # No collection while the index grows: a full pass over hundreds of thousands of new
        # objects would stall the loop for tens of ms. They are frozen right after.
        gc.disable()
        try:
            index = await compile_index_async(raw)
        finally:
            gc.enable()
        header = msgspec.json.decode(raw.split(b"\n", 1)[0], type=SnapshotHeader)
        self.campaigns = {c.id: c for c in header.campaigns}
        previous, self.index = self.index, index
        # The index lives until the next version: keep the collector from rescanning it.
        gc.freeze()
        if previous is not None:
            # Dropping the old index at once frees ~10^5-10^6 objects in one go (100+ ms at
            # 10,000 line items): take it apart in slices instead, once requests that
            # started on it have finished.
            self._retiring = asyncio.get_running_loop().create_task(_retire(previous))
        log.info(
            "snapshot v%s loaded: %d placements, %.1f ms",
            version,
            len(index.placements_by_key),
            (time.perf_counter() - started) * 1000,
        )
        return True

    @staticmethod
    def _recent(
        marks: dict[int, tuple[float, str]],
        since: float,
        zones: dict[int, str],
        day_of_zone: dict[str, str],
    ) -> frozenset[int]:
        """Marks made while a read was in flight (or just before), for the day it is now in
        their time zone: kept; older ones dropped, since the read that follows them has the
        truth, and yesterday's budget says nothing about today."""
        horizon = since - MARK_SECONDS
        for key in [
            k
            for k, (at, day) in marks.items()
            if at < horizon or day_of_zone.get(zones.get(k, "UTC"), day) != day
        ]:
            del marks[key]
        return frozenset(marks)

    async def run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh()
            except Exception:
                log.exception("snapshot refresh failed; serving the previous version")
