"""Draining the per-request-key opportunity counts into the event stream.

`serving.engine` adds one to `Index.request_keys[key]` per imp (a dict increment: the key
tuple it builds anyway for its merge cache). Every DRAIN_SECONDS the app takes the counts of
the indexes it has served from recently and appends them as "keys" events with the next
batch, so reporting can tell a line item how many requests its placements, sizes, countries,
device types and channels matched without serving counting anything per candidate. These
are diagnostics, not billing: a process that stops loses at most its last DRAIN_SECONDS.
"""

import time

from serving.events import Event, EventSink
from serving.index import Index

DRAIN_SECONDS = 5.0
# An index keeps counting while requests that started on it finish (buyers' 2 s cap): drain
# it for this long after a newer one replaced it.
KEEP_SECONDS = 10.0


def encode_key(slots: tuple[str, ...], country: str | None, devicetype: int | None,
               channel: str | None) -> str:  # fmt: skip
    """`300x250,video|US|2|web`: what reporting stores per request key."""
    return f"{','.join(slots)}|{country or ''}|{devicetype or 0}|{channel or ''}"


def decode_key(text: str) -> tuple[tuple[str, ...], str, int, str]:
    slots, country, devicetype, channel = text.split("|")
    return tuple(s for s in slots.split(",") if s), country, int(devicetype or 0), channel


class RequestKeyDrain:
    """The indexes served from lately, and one call that empties their counts."""

    def __init__(self) -> None:
        self._indexes: dict[int, tuple[Index, float]] = {}

    def drain(self, current: Index | None, sink: EventSink, now: float | None = None) -> int:
        """Emit the counts gathered since the last call as one stream entry; how many keys."""
        now = time.time() if now is None else now
        if current is not None:
            self._indexes[id(current)] = (current, now)
        totals: dict[tuple[int, str], int] = {}
        for ref, (index, seen) in list(self._indexes.items()):
            counts, index.request_keys = index.request_keys, {}
            for (placement_id, slots, country, devicetype, channel), n in counts.items():
                key = (placement_id, encode_key(slots, country, devicetype, channel))
                totals[key] = totals.get(key, 0) + n
            if index is not current and now - seen > KEEP_SECONDS:
                del self._indexes[ref]
        if totals:
            ts = int(now * 1000)
            sink.emit(
                [Event(t="keys", ts=ts, pl=pl, r=key, n=n) for (pl, key), n in totals.items()]
            )
        return len(totals)
