"""Creative errors with known codes through the stream and the real Celery worker to the
failure table of the measurement page and `GET /api/v1/reports/creative-failures/`: errors,
impressions of the kind and the rate, per creative kind and error code, tenant-scoped."""

import re
import uuid
from datetime import UTC, datetime, time
from typing import Any

import pytest
from redis import Redis

from creatives.models import Creative
from reporting.models import CreativeErrorHourly
from serving.events import Event
from tests.reporting.measurement_data import World, ingest, login, make_world, yesterday


def events(w: World) -> list[list[Event]]:
    at = int(datetime.combine(w.day, time(10, 5), tzinfo=UTC).timestamp() * 1000)

    def ev(t: str, li: Any, code: str = "") -> Event:
        return Event(
            t=t, ts=at, pl=w.p1.pk, li=li.pk, cp=li.campaign_id,
            adv=li.campaign.advertiser_id, cr=li.creatives.get().pk, r=code, dr="v1",
            d=uuid.uuid4().hex,
        )  # fmt: skip

    a, b = w.acme_li, w.beta_li  # Acme's creative is an image, Beta's a video (below)
    return [
        *[[ev("imp", a)] for _ in range(4)],
        [ev("err", a, "401"), ev("err", a, "401")],
        [ev("err", a, "900")],
        *[[ev("imp", b)] for _ in range(2)],
        [ev("err", b, "405")],
        [ev("err", b, "402"), ev("err", b)],
    ]


EXPECTED = [
    # (kind, code, errors, impressions, rate)
    ("image", "401", 2, 4, "50.00"),
    ("image", "900", 1, 4, "25.00"),
    ("video", "", 1, 2, "50.00"),
    ("video", "402", 1, 2, "50.00"),
    ("video", "405", 1, 2, "50.00"),
]


@pytest.mark.django_db(transaction=True)
def test_failure_rate_by_kind_and_code_on_the_page_and_api(
    celery_worker: None, redis_client: Redis
) -> None:
    world = make_world()
    Creative.objects.filter(pk=world.beta_li.creatives.get().pk).update(kind="video")
    ingest(redis_client, events(world))
    assert CreativeErrorHourly.objects.filter(code="401").get().errors == 2

    ops = login("ops", staff=True)
    api = ops.get(f"/api/v1/reports/creative-failures/?{yesterday(world)}").json()
    got = [
        (r["kind"], r["code"], r["errors"], r["impressions"], r["failure_rate"])
        for r in api["results"]
    ]
    assert got == EXPECTED
    assert api["count"] == 5
    assert api["results"][0]["meaning"] == "File not found"

    page = ops.get(f"/reports/measurement/?{yesterday(world)}").content.decode()
    body = page.split('data-table="failures"', 1)[1].split("</table>", 1)[0]
    shown = {
        key: dict(re.findall(r'data-metric="(\w+)">([^<]*)<', tr))
        for key, tr in re.findall(r'<tr data-failure="([^"]*)">(.*?)</tr>', body, re.S)
    }
    assert shown == {
        f"{kind}:{code}": {"errors": str(n), "impressions": str(imps), "failure_rate": rate}
        for kind, code, n, imps, rate in EXPECTED
    }

    # Beta sees its own video creative's failures only.
    beta = login("beta", world.beta)
    mine = beta.get(f"/api/v1/reports/creative-failures/?{yesterday(world)}").json()
    assert [(r["kind"], r["code"]) for r in mine["results"]] == [
        ("video", ""), ("video", "402"), ("video", "405"),
    ]  # fmt: skip
    bad = ops.get("/api/v1/reports/creative-failures/?range=fortnight")
    assert bad.status_code == 400
    assert bad.json()["error"]["fields"][0]["path"] == "range"
