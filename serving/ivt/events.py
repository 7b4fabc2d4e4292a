"""The serving process's side of event-time judgement: what the tracking doors ask.

`ServingApp` keeps the doors (`/v1/imp/`, `/v1/click/`, `/v1/ev/`); what an event's own
request says about it (crawler, data-center address, pre-fetch or link scanner), the
counters and limits its recording Lua call judges it by (`serving.ivt.judge`), the rules
and list published in Redis, and what an invalid impression takes back (its frequency
count) live here, so that the rules are read in one place.
"""

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import msgspec
from redis.asyncio import Redis

from serving.events import Event, EventSink
from serving.http import Scope, header
from serving.index import Index
from serving.ivt.judge import (
    CRAWLER,
    DATACENTER,
    PREFETCH,
    IvtState,
    Judgement,
    is_link_scanner,
    is_prefetch,
    judgement,
)
from serving.ivt.stuffing import is_stuffed, record_stuffed, rendered_size
from serving.keys import RedisKeys
from serving.store import SnapshotStore
from serving.targeting import cap_fields
from serving.tokens import TokenKind, TrackingToken

log = logging.getLogger(__name__)


class EventScreen:
    """Judges one serving process's impressions and clicks by the rules in force."""

    def __init__(
        self,
        state: IvtState,
        keys: RedisKeys,
        is_crawler: Callable[[str], bool],
        client_ip: Callable[[Scope], str | None],
        mark_ttl: int,
    ) -> None:
        self.state = state
        self.keys = keys
        self._is_crawler = is_crawler
        self._client_ip = client_ip
        self._mark_ttl = mark_ttl  # the tracking doors' once-per-decision marks

    async def refresh(self, redis: Redis) -> None:
        """The thresholds and data-center list published in Redis (admin, refresh job)."""
        async with redis.pipeline(transaction=False) as pipe:
            pipe.get(self.keys.ivt_rules)
            pipe.hget(self.keys.ivt_datacenter, "version")
            rules, version = await pipe.execute()
        published = version.decode() if version else ""
        text: Any = None
        if published and published != self.state.datacenter.version:
            text = await redis.hget(self.keys.ivt_datacenter, "text")
        self.state.apply(
            msgspec.json.decode(rules) if rules else None,
            published,
            text.decode() if text else None,
        )

    def general_reason(self, scope: Scope, kind: TokenKind) -> str:
        """Why an impression or click is general invalid traffic, from its request alone."""
        if not self.state.rules.enabled:
            return ""
        ua = header(scope, b"user-agent") or ""
        if ua and self._is_crawler(ua):
            return CRAWLER
        address = self._client_ip(scope)
        if address and address in self.state.datacenter:
            return DATACENTER
        if kind == "clk" and (
            is_prefetch(scope["method"], header(scope, b"purpose"), header(scope, b"sec-purpose"))
            or is_link_scanner(ua.lower())
        ):
            return PREFETCH
        return ""

    def judgement(
        self, token: TrackingToken, kind: TokenKind, reason: str, network: str
    ) -> Judgement:
        """What the recording Lua call judges the event by: its counters and limits."""
        # The wall clock, not the spend clock: a click's delay is the visitor's own time and
        # the rate windows are real minutes, whatever day the pacing simulator replays.
        return judgement(
            self.state.rules, self.keys, kind, token.decision_id,
            reason=reason, user=token.u, network=network, now=time.time(),
            campaign_id=token.campaign_id,
        )  # fmt: skip

    def uncount_frequency(self, sink: EventSink, index: Index | None, token: TrackingToken) -> None:
        """An invalid impression does not count against a frequency cap: take back what its
        decision counted (`ServingApp._count_frequency`, at the decision's time)."""
        li = index.line_items.get(token.line_item_id) if index is not None else None
        if li is None or not li.frequency_caps or not token.u:
            return
        key = self.keys.frequency(token.u)
        for name, _limit, _ttl in cap_fields(li, float(token.issued_at)):
            sink.call("HINCRBY", key, name, -1)

    def stuffed(self, token: TrackingToken, name: str, query: Mapping[str, str]) -> bool:
        """A `measurable` beacon of our own billed line item's impression reporting a box too
        small to be seen (`serving.ivt.stuffing`)."""
        rules = self.state.rules
        if name != "measurable" or not rules.enabled or not token.campaign_id or token.test:
            return False
        return is_stuffed(rendered_size(query.get("w"), query.get("h")), rules.min_render_px)

    def take_back(
        self, sink: EventSink, store: SnapshotStore, token: TrackingToken, beacon: Event
    ) -> None:
        """Record the beacon and take its impression back (spend, counts, frequency)."""
        counters = store.spend.counter_keys(token.line_item_id, token.campaign_id, token.issued_at)
        record_stuffed(
            sink, self.keys, token, beacon, counters, self._mark_ttl,
            lambda: self.uncount_frequency(sink, store.index, token),
        )  # fmt: skip
