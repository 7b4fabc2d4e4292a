"""Player and viewability events at the `/v1/ev/` door: which names are recorded, and which
are recorded once per decision.

Display markup sends `measurable` and `viewable` (`creatives.rendering.VIEWABILITY`); VAST
players send the tracking events of `creatives.vast.TRACKING_EVENTS`. Each is counted, never
billed. VAST 4.x has start, the quartiles, complete and skip happen once per ad, and MRC
counts a viewable impression once: those are de-duplicated per decision, in the same batched
Redis write as the event (a SET NX and the XADD in one script). Mute, unmute, pause and
resume fire each time the viewer does it, and each is counted.
"""

from serving.events import Event, EventSink, encode_events
from serving.http import HttpError
from serving.keys import RedisKeys
from serving.wire import Lua

ONCE_PER_DECISION = frozenset(
    {"viewable", "measurable", "start", "firstQuartile", "midpoint", "thirdQuartile",
     "complete", "skip"}
)  # fmt: skip
REPEATABLE = frozenset({"mute", "unmute", "pause", "resume"})
EVENT_NAMES = ONCE_PER_DECISION | REPEATABLE

# KEYS: dedupe key, stream. ARGV: dedupe ttl, encoded events. 1 when recorded, 0 a repeat.
RECORD_ONCE = Lua(
    """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[1])) then
  return 0
end
redis.call('XADD', KEYS[2], '*', 'v', ARGV[2])
return 1
"""
)


def event_name(given: str | None) -> str:
    """The event named by `?e=`, or a 400 naming what is accepted."""
    if given in EVENT_NAMES:
        return given
    shown = repr(given[:32]) if given else "missing"
    raise HttpError(
        400,
        "unknown_event",
        f"`e` is {shown}; expected one of {', '.join(sorted(EVENT_NAMES))}",
    )


def record_event(sink: EventSink, keys: RedisKeys, event: Event, ttl: int) -> None:
    """Append a player or viewability event with the next batch; without waiting for it,
    once per decision for the events that happen once."""
    if event.r in ONCE_PER_DECISION:
        dedupe = keys.seen(f"ev:{event.r}", event.d, event.cp)
        stream = keys.tracking_stream(event.cp, event.d)
        sink.script(RECORD_ONCE, (dedupe, stream), (ttl, encode_events([event])))
    else:
        sink.emit([event])
