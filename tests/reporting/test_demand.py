"""The measurement rollup: bids and wins per buyer, player events per line item, exact."""

import uuid
from decimal import Decimal

import pytest
from django.conf import settings
from redis import Redis

from reporting.ingest import ingest_events
from reporting.models import DemandHourly, HourlyRollup
from serving.events import Event, encode_events
from serving.keys import RedisKeys

pytestmark = pytest.mark.django_db

HOUR_MS = 1_800_000_000_000 - (1_800_000_000_000 % 3_600_000)


def add(client: Redis, *events: Event) -> None:
    client.xadd(RedisKeys(settings.REDIS_KEY_PREFIX).events, {"v": encode_events(list(events))})


def ev(t: str, li: int = 0, b: int = 0, cpm: int = 0, r: str = "", ts: int = HOUR_MS) -> Event:
    cp, adv = (3, 1) if li else (0, 0)
    return Event(t=t, ts=ts, pl=2, li=li, cp=cp, adv=adv, cpm=cpm, b=b, r=r, d=uuid.uuid4().hex)


def test_external_demand_has_its_own_rows_never_the_unfilled_one(redis_client: Redis) -> None:
    # One request, three slots: our line item 5, buyer 7, and nothing; buyers 7 and 8 bid.
    add(redis_client, ev("req", li=5), ev("req", b=7), ev("req"), ev("bid", b=7), ev("bid", b=8))
    add(redis_client, ev("req"), ev("bid", b=8))  # unfilled although buyer 8 bid
    add(redis_client, ev("imp", b=7, cpm=1_500_000), ev("imp", li=5, cpm=2_000_000))
    add(redis_client, ev("clk", b=7))

    ingest_events()

    rows = {
        (r.line_item_id, r.buyer_id): (r.requests, r.bids, r.wins, r.impressions, r.clicks, r.spend)
        for r in DemandHourly.objects.all()
    }
    assert rows == {
        (5, 0): (1, 0, 1, 1, 0, Decimal("0.002000000")),
        (0, 7): (1, 1, 1, 1, 1, Decimal("0.001500000")),
        (0, 8): (0, 2, 0, 0, 0, Decimal("0")),
        (0, 0): (2, 0, 0, 0, 0, Decimal("0")),
    }
    assert {r.currency for r in DemandHourly.objects.all()} == {settings.SERVING_CURRENCY}
    # The delivery rollup is unchanged by the new table: 4 requests, 2 impressions.
    assert sum(r.requests for r in HourlyRollup.objects.all()) == 4


def test_player_and_viewability_events_are_counted_per_line_item(redis_client: Redis) -> None:
    names = ["viewable", "measurable", "measurable", "start", "firstQuartile", "midpoint"]
    names += ["thirdQuartile", "complete", "skip", "mute", "mute", "pause", "unmute", "resume"]
    for name in names:
        add(redis_client, ev("evt", li=5, r=name))
    add(redis_client, ev("err", li=5, r="405"), ev("evt", li=6, r="complete"))

    ingest_events()

    row = DemandHourly.objects.get(line_item_id=5)
    assert (row.viewable, row.measurable, row.video_start) == (1, 2, 1)
    assert (row.first_quartile, row.midpoint, row.third_quartile) == (1, 1, 1)
    assert (row.complete, row.skip, row.mute, row.pause, row.errors) == (1, 1, 2, 1, 1)
    assert (row.campaign_id, row.advertiser_id, row.requests, row.spend) == (3, 1, 0, 0)
    assert DemandHourly.objects.get(line_item_id=6).complete == 1


def test_test_traffic_and_a_second_run_add_nothing(redis_client: Redis) -> None:
    add(redis_client, ev("req", li=5), Event(t="req", ts=HOUR_MS, pl=2, li=5, tt=1))
    ingest_events()
    ingest_events()

    assert DemandHourly.objects.get().requests == 1
