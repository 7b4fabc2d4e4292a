"""A Redis Cluster master killed under serving load: its replica takes over, ad requests
never get a 5xx meanwhile, serving writes again once the map is learned anew, and every
impression acknowledged before, during and after is in the stream once."""

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.utils import timezone

from campaigns.snapshot import build_snapshot, write_snapshot
from serving import clock
from serving.app import ServingApp
from serving.events import decode_events
from serving.keys import RedisKeys, local_day
from serving.snapshot import encode_snapshot
from tests.factories import make_campaign, make_line_item, make_placement
from tests.redis_cluster import LocalCluster, cluster_supported, local_cluster
from tests.serving.test_app import ad_body, config, with_client

pytestmark = pytest.mark.django_db

PARTITIONS = 12


@pytest.fixture
def own_cluster() -> Iterator[LocalCluster]:
    """A cluster of this test's own: it loses a master."""
    if not cluster_supported():
        pytest.skip("this redis-server has no cluster mode")
    with local_cluster() as cluster:
        yield cluster


def recorded_impressions(cluster: LocalCluster, keys: RedisKeys, alive: list[int]) -> list[str]:
    client = cluster.client()
    decisions = [
        event.d
        for stream in keys.event_streams(PARTITIONS)
        for _, fields in client.xrange(stream)  # type: ignore[union-attr]
        for event in decode_events(fields[b"v"])  # type: ignore[index]
        if event.t == "imp"
    ]
    client.close()
    return decisions


def test_a_master_killed_under_load_fails_over_without_a_5xx_or_a_lost_impression(
    own_cluster: LocalCluster, capsys: Any
) -> None:
    # given serving on the cluster, and the master holding the campaign's counters
    cluster = own_cluster
    placement = make_placement()
    campaign = make_campaign()
    make_line_item(campaign, "2.50")
    make_line_item(campaign, "1.00")
    keys = RedisKeys.for_url(settings.REDIS_KEY_PREFIX, cluster.url, PARTITIONS)
    client = cluster.client()
    write_snapshot(client, keys, encode_snapshot(build_snapshot(1, timezone.now())))
    client.close()
    day = local_day(clock.now(), campaign.advertiser.time_zone)
    victim = cluster.master_of(keys.spend(day, campaign.pk))
    alive = [p for p in cluster.ports if p != victim]

    async def scenario(http: httpx.AsyncClient, app: ServingApp) -> dict[str, Any]:
        ad_statuses: list[int] = []
        acked: set[str] = set()
        unacked: dict[str, str] = {}

        async def one() -> None:
            response = await http.post("/v1/ad", json=ad_body(placement.key))
            ad_statuses.append(response.status_code)
            decisions = response.json().get("decisions", []) if response.status_code == 200 else []
            for decision in decisions:
                if decision.get("impression_url"):
                    unacked[decision["id"]] = decision["impression_url"]

        async def fire() -> None:
            for decision_id, url in list(unacked.items()):
                if (await http.get(url)).status_code == 200:
                    acked.add(decision_id)
                    del unacked[decision_id]

        for _ in range(30):  # before
            await one()
        await fire()
        before = len(acked)
        # when the master is killed, and traffic goes on while its replica takes over
        cluster.kill(victim)
        killed = time.monotonic()
        failed_over_after = None
        for _ in range(400):  # bounded: about 20 s
            await one()
            await fire()
            if (
                failed_over_after is None
                and cluster.master_of(keys.spend(day, campaign.pk), alive) != victim
            ):
                failed_over_after = time.monotonic() - killed
            if failed_over_after is not None and not unacked and len(acked) > before + 30:
                break
            await app.sink.drain()
            await asyncio.sleep(0.05)
        await app.sink.drain()
        return {"ad": ad_statuses, "acked": acked, "unacked": unacked, "before": before,
                "failover": failed_over_after}  # fmt: skip

    result = with_client(scenario, config(redis_url=cluster.url, stream_partitions=PARTITIONS))
    recorded = recorded_impressions(cluster, keys, alive)
    with capsys.disabled():
        codes = {c: result["ad"].count(c) for c in set(result["ad"])}
        failover = result["failover"] or float("nan")
        print(f"\n[fault] master killed: {len(result['ad'])} ad requests {codes}, "
              f"{len(result['acked'])} impressions acknowledged ({result['before']} before), "
              f"replica promoted after {failover:.1f} s")  # fmt: skip
    # then no ad request got a 5xx; the replica took over; serving recorded again
    assert all(code < 500 for code in result["ad"])
    assert result["failover"] is not None
    assert result["unacked"] == {}
    assert len(result["acked"]) > result["before"] + 30
    # and every acknowledged impression is in the stream, once
    assert sorted(recorded) == sorted(set(recorded))
    assert result["acked"] <= set(recorded)
