"""The process-local snapshot: decoded once per published version, swapped atomically.

Requests read `store.index`, `store.exhausted` and `store.pacing` and never wait on Redis
for them; a background loop checks the published version about once a second. When it
changed, the store fetches only the snapshot parts it does not hold (parts are
content-addressed: an edit changes one) and patches a copy of the index with what changed
(`serving.index.patch_index`), or, when most of the book changed, rebuilds it in
cooperative chunks; either way the new index replaces the old in one assignment. The same
read brings the day's exhausted sets (each campaign's own day, in its time zone), the pacing
controller's pass-through rates and the bid multipliers of dynamic line items. Between two
reads, what this process's own charges learn (a budget reached) is applied at once
(`mark_exhausted`).
"""

import asyncio
import gc
import logging
import time
from decimal import Decimal

from redis.asyncio import Redis
from redis.exceptions import RedisError

from serving import clock
from serving.cluster import mget
from serving.index import (
    Delta,
    Index,
    IndexMismatch,
    compile_index_async,
    delta_between,
    patch_index,
)
from serving.keys import RedisKeys, local_day
from serving.outage import Outage
from serving.snapshot import CampaignSnap, Part, SnapshotHeader, decode_manifest, decode_part
from serving.spend import SpendRecorder, parse_exhausted
from serving.targeting import PacingRates

log = logging.getLogger(__name__)

# A budget this process saw reached stays stopped this long even if a read of the exhausted
# sets that started before the charge does not show it yet.
MARK_SECONDS = 3.0
MULTIPLIER_PLACES = Decimal("0.0001")


RETIRE_AFTER_SECONDS = 3.0  # longer than any request holds an index (buyers' 2 s cap)
RETIRE_SLICE = 64  # entries; freeing a list of candidates or a line item takes ~10-50 µs
ZONES_SLICE = 2000
# A version that changes more than this share of the items is compiled in full: patching
# costs about twice as much per changed item as compiling (out, then in again).
FULL_REBUILD_SHARE = 0.25


async def _retire(index: Index, *, sliced: bool = True) -> None:
    await asyncio.sleep(RETIRE_AFTER_SECONDS)
    if not sliced:
        return  # the task's frame held the last reference
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
        # The decoded parts of the current version by content hash: a new version brings
        # only the parts this process does not hold yet.
        self._parts: dict[str, Part] = {}
        self._zone_cache: tuple[Index | None, dict[int, str], dict[int, str]] | None = None
        self._retiring: asyncio.Task[None] | None = None
        self.campaigns: dict[int, CampaignSnap] = {}
        # Campaigns out of budget today; line items out of budget sit in `pacing.exhausted`.
        self.exhausted: frozenset[int] = frozenset()
        # Line item id → pass-through probability from the pacing controller, and more.
        self.pacing: PacingRates = PacingRates()
        self.spend = SpendRecorder(redis, keys, self)
        # What this process's own charges found spent: id -> (when, the local day it is for).
        self._campaign_marks: dict[int, tuple[float, str]] = {}
        self.built_at, self.loaded_at, self._built_at_loading = "", 0.0, ""
        self._line_item_marks: dict[int, tuple[float, str]] = {}

    @property
    def version(self) -> int:
        return self.index.version if self.index else 0

    def forget(self) -> None:
        """Drop the loaded snapshot, so the next refresh loads whatever is published. An app
        started again after a shutdown must not trust a version number it saw before: after
        Redis lost its data the counter starts over, and an equal number is other content."""
        self.index = None
        self._parts = {}
        self._zone_cache = None
        self.campaigns = {}

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
        """Campaign and line item time zones, computed once per version (`_zones_of`):
        every refresh needs them."""
        cached = self._zone_cache
        if cached is not None and cached[0] is self.index:
            return cached[1], cached[2]
        index = self.index
        zones = {c.id: c.time_zone for c in self.campaigns.values()}
        li_zones = (
            {li.id: zones.get(li.campaign_id, li.time_zone) for li in index.line_items.values()}
            if index
            else {}
        )
        self._zone_cache = (index, zones, li_zones)
        return zones, li_zones

    async def _zones_of(
        self, index: Index, previous: Index | None, delta: Delta | None
    ) -> tuple[Index, dict[int, str], dict[int, str]]:
        """The time zones of a new version: the previous ones updated for a patch that kept
        the header (and so every campaign's zone), else computed in slices."""
        header = index.header
        zones = {c.id: c.time_zone for c in header.campaigns} if header else {}
        cached = self._zone_cache
        if (
            delta is not None
            and previous is not None
            and cached is not None
            and cached[0] is previous
            and previous.header is header
        ):
            li_zones = dict(cached[2])
            for lid, li in delta.line_items.items():
                if li is None:
                    li_zones.pop(lid, None)
                else:
                    li_zones[lid] = zones.get(li.campaign_id, li.time_zone)
            return index, zones, li_zones
        li_zones = {}
        for n, li in enumerate(index.line_items.values(), 1):
            li_zones[li.id] = zones.get(li.campaign_id, li.time_zone)
            if n % ZONES_SLICE == 0:
                await asyncio.sleep(0)
        return index, zones, li_zones

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
        sets = [(day, key) for day in days for key in self.keys.exhausted_sets(day)]
        for _, key in sets:
            pipe.smembers(key)
        raw_version, rates, multipliers, *members = await pipe.execute()
        by_day: dict[str, set[bytes]] = {day: set() for day in days}
        for (day, _), found in zip(sets, members, strict=True):
            by_day[day] |= found  # a cluster's partitions (`RedisKeys.exhausted_sets`)
        campaigns, line_items = parse_exhausted(by_day, zones, li_zones, day_of_zone)
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
        loaded = await self._load(version)
        if loaded is None:  # expired between the reads: the next tick sees a newer one
            return False
        index, parts, delta, started = loaded
        previous = self.index
        zone_cache = await self._zones_of(index, previous, delta)
        self.campaigns = {c.id: c for c in index.header.campaigns} if index.header else {}
        self.index, self._parts, self._zone_cache = index, parts, zone_cache
        # When the version in use was built (its manifest) and loaded here: metrics' age.
        self.built_at, self.loaded_at = self._built_at_loading, time.time()
        # The index lives until the next version: keep the collector from rescanning it.
        gc.freeze()
        if previous is not None:
            # Dropping a whole old index at once frees ~10^5-10^6 objects in one go (100+ ms
            # at 10,000 line items): take it apart in slices instead, once requests that
            # started on it have finished. A patched index shares all but what changed with
            # the new one, so dropping its tables frees little: no slicing needed.
            self._retiring = asyncio.get_running_loop().create_task(
                _retire(previous, sliced=delta is None)
            )
        log.info(
            "snapshot v%s loaded: %d placements, %.1f ms (%s)",
            version,
            len(index.placements_by_key),
            (time.perf_counter() - started) * 1000,
            "full" if delta is None else f"patched: {len(delta)} items changed",
        )
        return True

    async def _load(
        self, version: int
    ) -> tuple[Index, dict[str, Part], Delta | None, float] | None:
        """The index of `version`, from the parts this process already holds and those it
        fetches (one MGET) and decodes, with the change it applied (None: built in full);
        None when the version has expired meanwhile."""
        raw = await self.redis.get(self.keys.snapshot_manifest(version))
        if raw is None:
            return None
        manifest = decode_manifest(raw)
        self._built_at_loading = manifest.built_at
        wanted = manifest.parts()
        missing = [h for h in dict.fromkeys(wanted) if h not in self._parts]
        # Content-addressed parts: on a cluster across slots, read per slot (`mget`).
        blobs = (
            await mget(self.redis, [self.keys.snapshot_part(h) for h in missing]) if missing else []
        )
        present = [blob for blob in blobs if blob is not None]
        if len(present) != len(missing):
            log.warning("snapshot v%s: parts expired before they were read", version)
            return None
        started = time.perf_counter()
        # No collection while the index grows: a full pass over hundreds of thousands of new
        # objects would stall the loop for tens of ms. They are frozen right after.
        gc.disable()
        try:
            fresh: dict[str, Part] = {}
            for digest, blob in zip(missing, present, strict=True):
                await asyncio.sleep(0)
                fresh[digest] = decode_part(blob)
            parts = {h: fresh[h] if h in fresh else self._parts[h] for h in wanted}
            header = parts[manifest.header]
            if not isinstance(header, SnapshotHeader):
                raise ValueError(f"snapshot v{version}: part {manifest.header} is no header")
            patched = await self._patched(version, header, parts, fresh)
            if patched is not None:
                index, delta = patched
            else:
                items = [p for p in parts.values() if not isinstance(p, SnapshotHeader)]
                index, delta = await compile_index_async(version, header, items), None
        finally:
            # Freeze before enabling: the first collection after a build would otherwise
            # walk every object it made (tens of ms). Freezing resets the count instead.
            gc.freeze()
            gc.enable()
        return index, parts, delta, started

    async def _patched(
        self, version: int, header: SnapshotHeader, parts: dict[str, Part], fresh: dict[str, Part]
    ) -> tuple[Index, Delta] | None:
        """The current index patched with what changed, unless a full build is cheaper."""
        old = self.index
        if old is None or not self._parts:
            return None
        left = [
            p
            for h, p in self._parts.items()
            if h not in parts and not isinstance(p, SnapshotHeader)
        ]
        arrived = [p for p in fresh.values() if not isinstance(p, SnapshotHeader)]
        limit = FULL_REBUILD_SHARE * (len(old.line_items) + len(old.creatives))
        delta = await delta_between(old, left, arrived, limit)
        if delta is None:
            return None
        try:
            return await patch_index(old, version, header, delta), delta
        except IndexMismatch:
            log.exception("snapshot v%s: the index could not be patched; rebuilding", version)
            return None

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

    async def run(self, interval: float, outage: Outage | None = None) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh()
            except (RedisError, OSError) as exc:  # said once per outage, not every second
                if outage is None:
                    log.warning("snapshot refresh failed (%s); serving the previous one", exc)
                else:
                    outage.failed("snapshot", exc)
                continue
            except Exception:
                log.exception("snapshot refresh failed; serving the previous version")
                continue
            if outage is not None:
                outage.ok("snapshot")
