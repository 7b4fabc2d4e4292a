"""Pixel stuffing: an impression whose ad was never really shown (a 1x1 or hidden frame, a
zero-size box), judged from what the served markup measured.

The viewability handler (`creatives.placeholders.VIEWABILITY_HANDLER`) sends `measurable`
once the impression pixel has loaded, with the box's rendered size clipped to its frame's
viewport (`w`, `h`, CSS pixels). A measurable impression narrower or shorter than
`IvtRules.min_render_px` was stuffed. The impression was billed when its pixel came (the
beacon comes after it), so the beacon's Lua call, in the batch it rides with anyway, takes
it back: the win's spend and the impression leave the day and lifetime counters (pacing
and budgets see it at once), and an invalidation event (`ivi`, reason `pixel_stuffing`, the
impression's time) goes to the stream, where ingestion moves the impression from the
billed rollups (delivery, demand) to the invalid one (`reporting.ivt.unbill`). Its frequency
count is taken back when the reply says it was. An impression already judged invalid, or
already taken back, is left alone; so is external demand's (its buyer was notified at the
impression, and bills it on its side).

An impression that never reports `measurable` is not judged: apps, players and browsers
without IntersectionObserver never do.
"""

from collections.abc import Callable

from serving.events import Event, EventSink, encode_events
from serving.ivt.judge import PIXEL_STUFFING
from serving.keys import RedisKeys
from serving.tokens import TrackingToken
from serving.wire import Lua

MAX_SIDE = 100_000  # CSS pixels; a larger figure is not a measurement

# KEYS: the measurable beacon's dedupe key, stream, the impression's mark, the take-back
# mark, day hash, lifetime hash. ARGV: ttl, the beacon's event, the invalidation event (ts 0,
# set here to the impression's), line item, the impression's cost (nanos).
# Returns 0 for a repeat beacon, 1 when recorded, 2 when the impression was taken back.
RECORD_STUFFED = Lua(
    """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[1])) then
  return 0
end
redis.call('XADD', KEYS[2], '*', 'v', ARGV[2])
local shown = redis.call('GET', KEYS[3])
if not shown or string.sub(shown, -1) == 'i' then
  return 1
end
if not redis.call('SET', KEYS[4], '1', 'NX', 'EX', tonumber(ARGV[1])) then
  return 1
end
redis.call('SET', KEYS[3], shown .. 'i', 'KEEPTTL')
local at = string.match(shown, '%d+')
local ev = string.gsub(ARGV[3], '"ts":0,', '"ts":' .. at .. ',', 1)
redis.call('XADD', KEYS[2], '*', 'v', ev)
local cost = '-' .. ARGV[5]
for _, k in ipairs({KEYS[5], KEYS[6]}) do
  if tonumber(ARGV[5]) > 0 then
    redis.call('HINCRBY', k, 's', cost)
    redis.call('HINCRBY', k, 's:' .. ARGV[4], cost)
  end
  redis.call('HINCRBY', k, 'i', -1)
  redis.call('HINCRBY', k, 'i:' .. ARGV[4], -1)
end
return 2
"""
)


def rendered_size(w: str | None, h: str | None) -> tuple[int, int] | None:
    """The size the beacon reports, or None when it reports none (older markup) or nonsense."""
    if not w or not h or not w.isdigit() or not h.isdigit() or len(w) > 6 or len(h) > 6:
        return None
    width, height = int(w), int(h)
    return (width, height) if width <= MAX_SIDE and height <= MAX_SIDE else None


def is_stuffed(size: tuple[int, int] | None, min_render_px: int) -> bool:
    return size is not None and min_render_px > 0 and min(size) < min_render_px


def invalidation(token: TrackingToken) -> Event:
    """The stream's record of a billed impression taken back (its time filled in by Lua)."""
    return Event(
        t="ivi", ts=0, pl=token.placement_id, li=token.line_item_id, cp=token.campaign_id,
        adv=token.advertiser_id, cr=token.creative_id, cpm=token.cpm_micros,
        d=token.decision_id, dr=token.door, u=token.u, iv=PIXEL_STUFFING, g=token.g,
    )  # fmt: skip


def record_stuffed(
    sink: EventSink,
    keys: RedisKeys,
    token: TrackingToken,
    beacon: Event,
    counters: tuple[str, str],
    ttl: int,
    taken_back: Callable[[], None],
) -> None:
    """Record a stuffed impression's beacon and take the impression back, with the next
    batch (not waited on); `taken_back` runs when the reply says it was."""
    d, c = token.decision_id, token.campaign_id
    script_keys = (
        keys.seen("ev:measurable", d, c), keys.tracking_stream(c, d), keys.seen("imp", d, c),
        keys.seen("ivi", d, c), *counters,
    )  # fmt: skip
    cost = 0 if token.test else token.cpm_micros
    args = (ttl, encode_events([beacon]), encode_events([invalidation(token)]),
            token.line_item_id, cost)  # fmt: skip

    def replied(result: object) -> None:
        if result == 2:
            taken_back()

    sink.script(RECORD_STUFFED, script_keys, args, replied)
