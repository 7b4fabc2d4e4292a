"""Events with known countries and device types through the stream and the real Celery
worker to the measurement page and API grouped by country and by device: every number shown
is the known total; after the day is rolled up, the daily rows give the same."""

import re
import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from redis import Redis

from reporting.measurement.rollup import roll_up_days
from reporting.models import GeoDeviceDaily, GeoDeviceHourly
from serving.events import Event, geo_device, split_geo_device
from tests.reporting.measurement_data import World, ingest, login, make_world, yesterday
from tests.reporting.test_measurement_end_to_end import shown


def page_rows(page: str) -> dict[str, dict[str, str]]:
    """The measurement table's rows by key ("" for an unknown country)."""
    body = page.split('data-table="measurement"', 1)[1].split("</table>", 1)[0]
    rows = {}
    for key, tr in re.findall(r'<tr data-key="([^"]*)">(.*?)</tr>', body, re.S):
        rows[key] = dict(re.findall(r'data-metric="(\w+)">(?:<b>)?([^<]*)<', tr))
    return rows


def geo_events(w: World) -> list[list[Event]]:
    at = int(datetime.combine(w.day, time(10, 5), tzinfo=UTC).timestamp() * 1000)
    a, b = w.acme_li, w.beta_li

    def ev(t: str, g: str, li: Any = None, cpm: int = 0, b_id: int = 0) -> Event:
        ids = {} if li is None else {
            "li": li.pk, "cp": li.campaign_id, "adv": li.campaign.advertiser_id,
            "cr": li.creatives.get().pk,
        }  # fmt: skip
        return Event(t=t, ts=at, pl=w.p1.pk, cpm=cpm, b=b_id, g=g, dr="v1",
                     d=uuid.uuid4().hex, **ids)  # fmt: skip

    entries = [
        # DE phones: 4 requests, 3 filled by Acme (USD), 2 impressions at 10 USD CPM, a click.
        [ev("req", "DE4", a), ev("req", "DE4", a), ev("req", "DE4", a), ev("req", "DE4")],
        [ev("imp", "DE4", a, 10_000_000)],
        [ev("imp", "DE4", a, 10_000_000)],
        [ev("clk", "DE4", a)],
        # FR computers: 2 requests filled by Beta (EUR, 1.10 that day), one impression at
        # 100 EUR CPM; one won by buyer 7, its impression at 5 USD CPM.
        [ev("req", "FR2", b), ev("req", "FR2", b), ev("req", "FR2", b_id=w.buyer7.pk)],
        [ev("imp", "FR2", b, 100_000_000)],
        [ev("imp", "FR2", cpm=5_000_000, b_id=w.buyer7.pk)],
        # Unknown country on a phone, and nothing known at all (older events).
        [ev("req", "4"), ev("req", "")],
    ]
    return entries


# (requests, wins, impressions, clicks, spend in USD) by country and by device type.
COUNTRIES = {"DE": (4, 3, 2, 1, "0.02"), "FR": (3, 3, 2, 0, "0.12"), "": (2, 0, 0, 0, "0.00")}
DEVICES = {4: (5, 3, 2, 1, "0.02"), 2: (3, 3, 2, 0, "0.12"), 0: (1, 0, 0, 0, "0.00")}
FIGURES = ("requests", "wins", "impressions", "clicks", "spend")


def test_geo_device_codes_round_trip() -> None:
    assert geo_device("US", 4) == "US4" and split_geo_device("US4") == ("US", 4)
    assert split_geo_device(geo_device(None, 4)) == ("", 4)
    assert split_geo_device(geo_device("GB", None)) == ("GB", 0)
    assert split_geo_device("") == ("", 0) and split_geo_device("x!") == ("", 0)


@pytest.mark.django_db(transaction=True)
def test_known_countries_and_devices_reach_the_page_and_api(
    celery_worker: None, redis_client: Redis, settings: Any
) -> None:
    world = make_world()
    ingest(redis_client, geo_events(world))
    ops = login("ops", staff=True)

    def check(group: str, expected: dict[Any, tuple[Any, ...]]) -> dict[str, Any]:
        query = f"group_by={group}&currency=USD&{yesterday(world)}"
        api = ops.get(f"/api/v1/reports/measurement/?{query}").json()
        got = {r["key"]: tuple(r[f] for f in FIGURES) for r in api["results"]}
        assert got == {k: (*v[:4], v[4]) for k, v in expected.items()}, group
        assert api["totals"]["requests"] == 9 and api["totals"]["spend"] == "0.14"
        assert api["totals"]["bids"] is None and api["totals"]["viewability"] is None
        assert any("country and device type" in n for n in api["notes"])
        page = ops.get(f"/reports/measurement/?{query}").content.decode()
        rows = page_rows(page)
        by_key = {str(r["key"]): r for r in api["results"]}
        for key, cells in rows.items():
            source = api["totals"] if key == "total" else by_key[key]
            for name, text in cells.items():
                assert text == shown(source[name]), (group, key, name)
        assert set(rows) == {*(str(k) for k in expected), "total"}
        return api

    check("country", COUNTRIES)
    devices = check("device", DEVICES)
    assert {r["key"]: r["label"] for r in devices["results"]}[4] == "Phone"
    assert devices["results"][0]["ctr"] == "50.00"  # DE phones: 1 click of 2 impressions

    # Beta sees its own line item only.
    beta = login("beta", world.beta)
    mine = beta.get(f"/api/v1/reports/measurement/?group_by=country&{yesterday(world)}").json()
    assert [(r["key"], r["impressions"], r["spend"]) for r in mine["results"]] == [
        ("FR", 1, "0.10")
    ]

    # The closed day rolls into daily rows (and its hours go): the same report.
    settings.DEMAND_HOURLY_DAYS = 0
    day_end = datetime.combine(world.day + timedelta(days=1), time(0), UTC)
    roll_up_days(day_end + timedelta(days=1))
    assert not GeoDeviceHourly.objects.filter(hour__lt=day_end).exists()
    de = GeoDeviceDaily.objects.get(country="DE", line_item_id=world.acme_li.pk)
    assert (de.requests, de.wins, de.impressions, de.clicks) == (3, 3, 2, 1)
    check("country", COUNTRIES)
