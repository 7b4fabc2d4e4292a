"""Every Lua call serving makes touches one Redis Cluster slot (hash tags, `serving.keys`),
and on a single Redis the key names are exactly those of earlier releases.

The KEYS are those the real code queues on a real `EventSink` (read from its queue before
any flush), for representative decisions: several campaigns, a house decision (campaign 0),
an impression and a click with the behavioural counters and the hold on, a stuffed beacon,
a player event, the fleet limits.
"""

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from redis.crc import key_slot

from serving.events import KNOWN_PARTITIONS, Event, EventSink
from serving.ivt.judge import IvtRules, judgement
from serving.ivt.stuffing import record_stuffed
from serving.keys import RedisKeys
from serving.limits.fleet import BREAKER, CLAIM
from serving.measure import record_event
from serving.snapshot import LineItemSnap
from serving.store import SnapshotStore
from serving.tokens import TrackingToken

CAMPAIGNS = (0, 1, 2, 7, 12, 1001, 987654)
DECISIONS = ("AAAAAAAAAAAAAAAAAAAAAA-0", "Zq3xk9v0Lr2bWm8uYt5sHc-2", "0123456789abcdefghijkl-1")
NOW = 1_780_000_000


def slots_of(keys: Any) -> set[int]:
    return {key_slot(k.encode()) for k in keys}


def line_item(li: int, campaign: int) -> LineItemSnap:
    return LineItemSnap(
        id=li, campaign_id=campaign, advertiser_id=3, bid=Decimal("2.5"), sizes=["300x250"],
        start=0.0, end=None, creative_ids=[9], creative_weights=[1], time_zone="Europe/Paris",
    )  # fmt: skip


def token(kind: str, decision: str, campaign: int) -> TrackingToken:
    return TrackingToken(
        kind=kind, decision_id=decision, placement_id=5, line_item_id=40 + campaign,  # type: ignore[arg-type]
        campaign_id=campaign, advertiser_id=3, creative_id=9, cpm_micros=2_500_000,
        issued_at=NOW, u="pseudo-1", net="203.0.113.0",
    )  # fmt: skip


def queued_script_keys(keys: RedisKeys) -> list[tuple[str, tuple[str, ...]]]:
    """(what, KEYS) of every script the serving code queues for the representative calls."""

    async def go() -> list[tuple[str, tuple[str, ...]]]:
        sink = EventSink("redis+cluster://127.0.0.1:1", keys.events,
                         keys.event_streams(keys.partitions))  # fmt: skip
        store = SnapshotStore(None, keys)  # type: ignore[arg-type]  # never reads here
        rules = IvtRules()
        waiting = []
        for c in CAMPAIGNS:
            for d in DECISIONS:
                li = line_item(40 + c, c)
                store.spend.charge_win(sink, li, 2_500_000, NOW)  # a win's charge
                store.spend._running.clear()
                for kind in ("imp", "clk"):
                    judge = judgement(rules, keys, kind, d, reason="", user="pseudo-1",
                                      network="203.0.113.0", now=NOW, campaign_id=c)  # fmt: skip
                    event = Event(t=kind, ts=NOW * 1000, pl=5, li=li.id, cp=c, d=d, u="pseudo-1")
                    waiting.append(asyncio.ensure_future(store.spend.record_billable(
                        sink, event, issued_at=NOW, cost=1000, pending=2_500_000,
                        dedupe_key=keys.seen(kind, d, c), dedupe_ttl=3600, judge=judge,
                    )))  # fmt: skip
                tok = token("imp", d, c)
                beacon = Event(t="ev", ts=NOW * 1000, pl=5, li=li.id, cp=c, d=d, r="measurable")
                counters = store.spend.counter_keys(li.id, c, NOW)
                if c:  # a house impression is never taken back (`EventScreen.stuffed`)
                    record_stuffed(sink, keys, tok, beacon, counters, 3600, lambda: None)
                record_event(sink, keys, Event(t="ev", ts=NOW * 1000, pl=5, li=li.id, cp=c, d=d,
                                               r="complete"), 3600)  # fmt: skip
        for buyer in (1, 77):
            sink.script(CLAIM, (keys.buyer_qps(buyer, NOW),), (10, 1, 5, 0))
            sink.script(BREAKER, (keys.buyer_breaker(buyer), keys.buyer_breaker_open(buyer)), ())
        sink.script(KNOWN_PARTITIONS, (keys.event_partitions,), (4,))
        await asyncio.sleep(0)  # the billable calls queue their scripts
        queued = [(op.script.body[:40] if op.script else "", tuple(op.keys)) for op in sink._ops]
        for future in waiting:
            future.cancel()
        if sink._timer is not None:
            sink._timer.cancel()
        return queued

    return asyncio.run(go())


@pytest.mark.parametrize("partitions", [1, 4, 12])
def test_every_script_call_touches_one_slot_on_a_cluster(partitions: int) -> None:
    # given the keys of a cluster deployment
    keys = RedisKeys("ads:", cluster=True, partitions=partitions)
    # when serving queues its scripts for representative decisions
    calls = queued_script_keys(keys)
    # then each call's KEYS hash to one slot
    assert len(calls) == (len(CAMPAIGNS) * 5 - 1) * len(DECISIONS) + 5
    crossing = [(what, ks) for what, ks in calls if ks and len(slots_of(ks)) != 1]
    assert crossing == []


def test_campaigns_spread_over_the_partitions_slots_on_a_cluster() -> None:
    keys = RedisKeys("ads:", cluster=True, partitions=12)
    spend_slots = {key_slot(keys.spend("20260101", c).encode()) for c in range(1, 100)}
    assert len(spend_slots) == 12
    assert spend_slots == {key_slot(k.encode()) for k in keys.event_streams(12)}


def test_a_single_redis_keeps_the_names_of_earlier_releases() -> None:
    # given the keys of a single Redis (what every release before cluster support used)
    keys = RedisKeys.for_url("ads:", "redis://127.0.0.1:6379/0", 4)
    # then the names are unchanged
    assert not keys.cluster
    assert keys.spend("20260101", 12) == "ads:spend:20260101:12"
    assert keys.lifetime_spend(12) == "ads:spend:life:12"
    assert keys.exhausted("20260101", 12) == "ads:exhausted:20260101"
    assert keys.exhausted_sets("20260101") == ("ads:exhausted:20260101",)
    assert keys.seen("imp", "D", 12) == "ads:seen:imp:D"
    assert keys.events == "ads:events"
    assert keys.event_streams(3) == ("ads:events", "ads:events:1", "ads:events:2")
    assert keys.ivt_count("u", "p", "imp", 60, 5, 12, "D") == "ads:ivt:u:p:imp:60:5"
    assert keys.ivt_hold("p", 12, "D") == "ads:ivt:hold:p"
    assert keys.ivt_held == keys.ivt_held_in(12, "D") == "ads:ivt:held"
    assert keys.ivt_held_sets() == ("ads:ivt:held",)
    # and a decision's tracking stream is the partition the sink picks by its request
    sink = EventSink("redis://127.0.0.1:1/0", keys.events, keys.event_streams(4))
    for d in DECISIONS:
        assert keys.tracking_stream(12, d) == sink.stream_for(d)


def test_a_cluster_url_selects_tagged_names() -> None:
    keys = RedisKeys.for_url("ads:", "redis+cluster://10.0.0.1:7000,10.0.0.2:7000", 4)
    assert keys.cluster
    assert keys.spend("20260101", 13) == "ads:spend:{p1}:20260101:13"
    assert keys.events == "ads:events:{p0}"
    with pytest.raises(ValueError, match="prefix"):
        RedisKeys("ads{x}:", cluster=True)
