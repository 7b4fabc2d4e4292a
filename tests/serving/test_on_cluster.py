"""Serving on a single Redis and on a Redis Cluster alike: a published snapshot is fetched,
a decision made, its win charged, its impression recorded once (spend, stream), frequency
caps counted, all through the real app and the real servers (the cluster fixture's six)."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis
from django.conf import settings
from django.utils import timezone

from campaigns import services
from campaigns.snapshot import build_snapshot, write_snapshot
from serving import clock
from serving.app import ServingApp
from serving.events import decode_events
from serving.keys import RedisKeys, local_day
from serving.snapshot import encode_snapshot
from tests.factories import make_campaign, make_line_item, make_placement
from tests.redis_cluster import LocalCluster
from tests.serving.test_app import ad_body, config, with_client

pytestmark = pytest.mark.django_db

PARTITIONS = 4


@dataclass
class Target:
    url: str
    client: Any  # redis.Redis or redis.cluster.RedisCluster
    keys: RedisKeys

    def publish(self, version: int = 1) -> None:
        """What `publish_snapshot` does, onto this Redis."""
        write_snapshot(
            self.client, self.keys, encode_snapshot(build_snapshot(version, timezone.now()))
        )

    def events(self) -> list[Any]:
        return [
            event
            for stream in self.keys.event_streams(PARTITIONS)
            for _, fields in self.client.xrange(stream)
            for event in decode_events(fields[b"v"])
        ]


@pytest.fixture(params=["single", "cluster"])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """The shared test Redis (emptied by `redis_client`), or the session's cluster (emptied
    here)."""
    if request.param == "single":
        url = settings.REDIS_URL
        yield Target(
            url,
            redis.Redis.from_url(url),
            RedisKeys.for_url(settings.REDIS_KEY_PREFIX, url, PARTITIONS),
        )
        return
    cluster: LocalCluster = request.getfixturevalue("redis_cluster")
    client = cluster.client()
    try:
        yield Target(
            cluster.url,
            client,
            RedisKeys.for_url(settings.REDIS_KEY_PREFIX, cluster.url, PARTITIONS),
        )
    finally:
        client.close()
        cluster.flush()


def serve(target: Target, scenario: Any) -> Any:
    return with_client(scenario, config(redis_url=target.url, stream_partitions=PARTITIONS))


def test_a_decision_its_charge_and_its_impression_once(target: Target) -> None:
    # given a published book of two line items
    placement = make_placement()
    campaign = make_campaign()
    best = make_line_item(campaign, "2.50")
    make_line_item(campaign, "1.00")
    target.publish()

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> tuple[int, list[int]]:
        response = await client.post("/v1/ad", json=ad_body(placement.key))
        decision = response.json()["decisions"][0]
        statuses = [(await client.get(decision["impression_url"])).status_code for _ in range(2)]
        await app.sink.drain()
        return decision["line_item"], statuses

    # when serving fetches it, decides, and the impression pixel fires twice
    winner, statuses = serve(target, scenario)
    # then the best line item won, was charged once and its impression recorded once
    assert winner == best.pk
    assert statuses == [200, 200]
    day = local_day(clock.now(), campaign.advertiser.time_zone)
    spend = target.client.hgetall(target.keys.spend(day, campaign.pk))
    assert int(spend[b"i"]) == 1
    assert int(spend[f"i:{best.pk}".encode()]) == 1
    events = target.events()
    (impression,) = [e for e in events if e.t == "imp"]
    # the clearing CPM in micros: the impression's price in billionths (second price)
    assert int(spend[b"s"]) == impression.cpm == 1_010_000
    lifetime = target.client.hgetall(target.keys.lifetime_spend(campaign.pk))
    assert int(lifetime[b"s"]) == impression.cpm
    assert {e.li for e in events if e.t == "req"} == {best.pk}


def test_a_frequency_cap_holds_on_a_pseudonymous_id(target: Target) -> None:
    # given the best line item capped at twice a day
    placement = make_placement()
    campaign = make_campaign()
    best = make_line_item(campaign, "2.50")
    other = make_line_item(campaign, "1.00")
    services.update_line_item(best, frequency_caps=[{"count": 2, "period": "day"}])
    target.publish()

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> list[int]:
        winners = []
        for _ in range(3):
            body = ad_body(placement.key, user={"id": "reader-42"})
            response = await client.post("/v1/ad", json=body)
            winners.append(response.json()["decisions"][0]["line_item"])
            await app.sink.drain()
        return winners

    # when one reader asks three times
    winners = serve(target, scenario)
    # then the third goes to the other line item, and the stream says why
    assert winners == [best.pk, best.pk, other.pk]
    assert any(e.t == "loss" and e.r == "frequency_cap" for e in target.events())
