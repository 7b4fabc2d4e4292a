"""Per-key request limits shared by every serving process, without a Redis round trip each.

Each process counts its own requests per key and one-second window, and every few
milliseconds (with the event batch) adds what it counted to a Redis counter for that window
and reads the total back. A request is refused (429) when the process's own count plus what
the other processes had counted at the last sync reaches the limit. So the shared limit is
exact up to one batch interval of other processes' traffic, and a single process is exact.
"""

import asyncio
import logging
from dataclasses import dataclass

from serving.events import EventSink

log = logging.getLogger(__name__)

WINDOW_TTL = 3  # seconds a window's counter lives in Redis


@dataclass(slots=True)
class _Window:
    second: int
    local: int = 0  # requests this process allowed in the window
    sent: int = 0  # of which already added to Redis
    others: int = 0  # other processes' requests in the window, at the last sync
    syncing: bool = False


class RateLimiter:
    def __init__(self, sink: EventSink, prefix: str, limit: int) -> None:
        self.sink = sink
        self.prefix = prefix
        self.limit = limit
        self._windows: dict[str, _Window] = {}

    def allow(self, key: str, now: float) -> bool:
        if self.limit <= 0:
            return True
        second = int(now)
        window = self._windows.get(key)
        if window is None or window.second != second:
            if len(self._windows) > 10_000:  # unknown keys are refused earlier; stay bounded
                self._windows.clear()
            window = self._windows[key] = _Window(second)
        if window.local + window.others >= self.limit:
            return False
        window.local += 1
        if not window.syncing:
            window.syncing = True
            asyncio.get_running_loop().create_task(self._sync(key, window))
        return True

    async def _sync(self, key: str, window: _Window) -> None:
        redis_key = f"{self.prefix}rl:{key}:{window.second}"
        try:
            while window.sent < window.local:
                delta = window.local - window.sent
                window.sent += delta
                total = await self.sink.fetch("INCRBY", redis_key, delta)
                self.sink.call("EXPIRE", redis_key, WINDOW_TTL)
                window.others = max(0, int(total) - window.sent)
        except Exception as exc:  # Redis down: the limit degrades to per process
            log.debug("rate limit sync failed: %s", exc)
        finally:
            window.syncing = False
