"""The process-local snapshot: decoded once per published version, swapped atomically.

Requests read `store.index` and `store.exhausted` and never wait on Redis for them; a
background loop checks the published version about once a second and rebuilds the index in
cooperative chunks when it changed.
"""

import asyncio
import gc
import logging
import time

from redis.asyncio import Redis

from serving.keys import RedisKeys, day_of
from serving.snapshot import Index, compile_index_async, snapshot_decoder

log = logging.getLogger(__name__)


class SnapshotStore:
    def __init__(self, redis: Redis, keys: RedisKeys) -> None:
        self.redis = redis
        self.keys = keys
        self.index: Index | None = None
        self.exhausted: frozenset[int] = frozenset()

    @property
    def version(self) -> int:
        return self.index.version if self.index else 0

    async def refresh(self) -> bool:
        """Load the published snapshot if its version changed; True when it swapped."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(self.keys.snapshot_version)
        pipe.smembers(self.keys.exhausted(day_of(time.time())))
        raw_version, exhausted = await pipe.execute()
        self.exhausted = frozenset(int(c) for c in exhausted)
        version = int(raw_version or 0)
        if version == 0 or version == self.version:
            return False
        data = await self.redis.get(self.keys.snapshot_data(version))
        if data is None:  # expired between the two reads: the next tick sees a newer one
            return False
        started = time.perf_counter()
        index = await compile_index_async(snapshot_decoder.decode(data))
        self.index = index
        # The index lives until the next version: keep the collector from rescanning it.
        gc.freeze()
        log.info(
            "snapshot v%s loaded: %d placements, %.1f ms",
            version,
            len(index.placements_by_key),
            (time.perf_counter() - started) * 1000,
        )
        return True

    async def run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.refresh()
            except Exception:
                log.exception("snapshot refresh failed; serving the previous version")
