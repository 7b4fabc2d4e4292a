"""OpenRTB `test = 1` is never billable (issue 13 item 3): the same answer, but no spend, no
frequency counts, no billing notice, no revenue in the rollups; counted apart instead. Through
the ASGI app on the real Redis, then the real ingestion."""

from typing import Any

import httpx
import pytest
from django.conf import settings
from redis import Redis

from campaigns.snapshot import publish_snapshot
from reporting.ingest import ingest_events
from reporting.models import HourlyRollup, HourlyTestTraffic
from serving.app import ServingApp
from serving.models import Buyer
from tests.serving.buyer_server import Behaviour, LoopbackBuyer
from tests.serving.test_app import with_client
from tests.serving.test_serving_path import book, openrtb_body

__all__ = ["book"]  # the fixture, used by name

pytestmark = pytest.mark.django_db


def _auction_and_impression(key: str, **extra: Any) -> dict[str, Any]:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> dict[str, Any]:
        body = openrtb_body(key, user={"id": "reader-1"}, **extra)
        answer: dict[str, Any] = (await client.post("/openrtb2/auction", json=body)).json()
        [bid] = answer["seatbid"][0]["bid"]
        assert (await client.get(bid["burl"])).status_code == 200
        await app.pool.drain_notices()
        return answer

    return with_client(scenario)


def _spend_and_caps(redis_client: Redis) -> list[str]:
    prefix = settings.REDIS_KEY_PREFIX
    found = [*redis_client.scan_iter(f"{prefix}spend:*"), *redis_client.scan_iter(f"{prefix}fc:*")]
    return sorted(str(key) for key in found)


def test_test_traffic_gets_the_same_answer_and_is_never_billed(
    book: dict[str, Any], redis_client: Redis
) -> None:
    test = _auction_and_impression(book["key"], test=1)

    # The same answer as live traffic would get...
    [bid] = test["seatbid"][0]["bid"]
    assert (bid["crid"], bid["price"]) == (str(book["best"].creatives.get().pk), 1.01)
    # ...but nothing charged or counted against a cap, and no revenue once rolled up.
    assert _spend_and_caps(redis_client) == []
    ingest_events()
    assert not HourlyRollup.objects.exists()
    [row] = HourlyTestTraffic.objects.all()
    assert (row.placement_id, row.requests, row.impressions, row.clicks) == (
        book["placement"].pk, 1, 1, 0,
    )  # fmt: skip

    # Live traffic, for contrast, is charged and rolled up as ever.
    _auction_and_impression(book["key"])
    assert _spend_and_caps(redis_client) != []
    ingest_events()
    billed = HourlyRollup.objects.get(line_item_id=book["best"].pk)
    assert (billed.requests, billed.impressions, str(billed.spend)) == (1, 1, "0.001010000")
    assert HourlyTestTraffic.objects.get().requests == 1


def test_a_buyer_winning_test_traffic_gets_no_billing_notice(book: dict[str, Any]) -> None:
    with LoopbackBuyer(Behaviour(bid={"price": "9.00"})) as buyer:
        Buyer.objects.create(name="b", endpoint=buyer.endpoint, timeout_ms=500, currency="USD")
        publish_snapshot()

        _auction_and_impression(book["key"], test=1)

        assert buyer.last.body["test"] == 1
        paths = buyer.notice_paths()
        assert any(p.startswith("/win") for p in paths)
        assert not any(p.startswith("/bill") for p in paths), paths
