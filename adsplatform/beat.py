"""A beat scheduler that several beat processes can run at once (a standby on another host),
each periodic task still sent once per period.

Time is cut into slots of each entry's period (wall clock, epoch seconds // period); before
sending an entry, a beat claims `tick:<name>:<slot>` in Redis with SET NX and an expiry of
two periods. The first beat to reach a slot sends the task; the other finds the claim taken
and drops its copy (it logs so at debug level). With both beats alive every slot is sent by
whichever ticks first in it; with one dead, the other sends them all, so losing a beat host
does not stop pacing. Entries whose schedule has no fixed period (crontab) are not claimed.

If Redis cannot be asked, the task is sent anyway: Redis is the broker too, so the send then
most likely fails as well, and a duplicate is safe (every duty is idempotent or holds its own
lease, docs/deploy.md "Two beat schedulers"), a lost tick less so.
"""

import logging
import time
from typing import Any

from celery.beat import PersistentScheduler, ScheduleEntry
from celery.schedules import schedule
from django.conf import settings
from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

# Redis waits in beat are bounded: a hung Redis must not hang the schedule.
REDIS_TIMEOUT = 2.0


def tick_slot(period: float, now: float) -> int:
    """The slot of `now` for an entry run every `period` seconds."""
    return int(now // period)


class TickLockScheduler(PersistentScheduler):
    """`celery beat`'s persistent scheduler, with each send claimed per period in Redis."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._redis: Redis | None = None
        self._failing = False
        super().__init__(*args, **kwargs)

    def apply_entry(self, entry: ScheduleEntry, producer: Any = None) -> None:
        if not self.claim(entry):
            log.debug("Scheduler: %s already sent for this period by another beat", entry.name)
            return
        super().apply_entry(entry, producer=producer)

    def claim(self, entry: ScheduleEntry) -> bool:
        """Whether this beat is the first to send `entry` in its current slot."""
        run_every = getattr(entry.schedule, "run_every", None)
        if not isinstance(entry.schedule, schedule) or run_every is None:
            return True
        period = run_every.total_seconds()
        if period <= 0:
            return True
        slot = tick_slot(period, time.time())
        key = f"{settings.REDIS_KEY_PREFIX}tick:{entry.name}:{slot}"
        try:
            claimed = self._client().set(key, "1", nx=True, px=max(1000, int(period * 2000)))
        except (RedisError, OSError) as exc:
            if not self._failing:  # once per outage, not once per tick
                log.warning("beat could not claim %s (sending it anyway): %s", entry.name, exc)
            self._failing = True
            return True
        self._failing = False
        return bool(claimed)

    def _client(self) -> Redis:
        if self._redis is None:
            self._redis = Redis.from_url(
                settings.REDIS_URL,
                socket_timeout=REDIS_TIMEOUT,
                socket_connect_timeout=REDIS_TIMEOUT,
            )
        return self._redis

    def close(self) -> None:
        super().close()
        if self._redis is not None:
            self._redis.close()
            self._redis = None
