"""docs/sample-bulksheet.csv uploads cleanly against the demo data."""

import csv
import io
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings

from campaigns.demo import load_demo
from campaigns.models import Campaign, LineItem, LineItemCreative
from creatives.models import Creative
from tests.bulk.helpers import upload_and_apply

pytestmark = pytest.mark.django_db

SAMPLE = Path(settings.BASE_DIR) / "docs" / "sample-bulksheet.csv"
# The sample's ids are those of a fresh demo database; here the database may have used others.
FRESH_IDS = {
    "Campaign Id": (Campaign, ["Spring hiking boots", "Tent clearance"]),
    "Line Item Id": (
        LineItem,
        ["Boots, run of network", "Boots, home leaderboard", "Tents, medium rectangle"],
    ),
    "Creative Id": (
        Creative,
        ["Hiking boots 300x250", "Hiking boots 728x90", "Tent clearance 300x250"],
    ),
}


def sample_for_this_database() -> bytes:
    rows = list(csv.DictReader(io.StringIO(SAMPLE.read_text())))
    for column, (model, names) in FRESH_IDS.items():
        ids = {
            str(n): str(model._default_manager.get(name=name).pk) for n, name in enumerate(names, 1)
        }
        for row in rows:
            row[column] = ids.get(row[column], row[column])
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def test_the_sample_bulksheet_applies_to_the_demo_data() -> None:
    demo = load_demo()

    upload = upload_and_apply(demo.advertiser, sample_for_this_database())

    assert (upload.status, upload.errors, upload.rows_total) == ("done", [], 11)
    assert upload.summary == {
        "Campaign": {"create": 1, "update": 2},
        "Line Item": {"create": 2, "update": 2},
        "Creative Assignment": {"create": 3, "update": 1},
    }
    rain = Campaign.objects.get(name="Autumn rain jackets")
    assert (rain.status, rain.goal_type, rain.goal_target) == ("active", "clicks", Decimal("600"))
    commute = LineItem.objects.get(name="Rain jackets, commuter mornings")
    assert commute.regions == ["US-WA", "CA-BC"]
    assert LineItemCreative.objects.filter(line_item=commute).count() == 2
    # It adds to the demo and breaks nothing the README's quick start uses.
    leaderboard = LineItem.objects.get(name="Boots, home leaderboard")
    assert (leaderboard.status, leaderboard.sizes) == ("active", ["728x90"])
    boots = LineItem.objects.get(name="Boots, run of network")
    assert (boots.bid, boots.countries) == (Decimal("4.75"), [])
    assert LineItem.objects.get(name="Tents, weekend campers").bid == Decimal("3.00")


def test_after_the_sample_the_quick_start_request_still_fills() -> None:
    import asyncio

    import httpx

    from campaigns.demo_accounts import HOME_KEY
    from campaigns.snapshot import publish_snapshot
    from serving.app import ServingApp

    demo = load_demo()
    assert upload_and_apply(demo.advertiser, sample_for_this_database()).status == "done"
    publish_snapshot()

    async def quick_start() -> list[list[str]]:
        app = ServingApp.from_settings()
        transport = httpx.ASGITransport(app=app)
        sizes = []
        try:
            await app.startup()
            async with httpx.AsyncClient(transport=transport, base_url="http://ads.test") as http:
                for size in ("728x90", "300x250"):  # the README's curl, and the sidebar's size
                    ad = await http.post(
                        "/v1/ad",
                        json={"placement": HOME_KEY, "slots": [{"id": "top", "sizes": [size]}]},
                    )
                    assert ad.status_code == 200, ad.text
                    sizes.append([d["size"] for d in ad.json()["decisions"]])
        finally:
            await app.shutdown()
        return sizes

    assert asyncio.run(quick_start()) == [["728x90"], ["300x250"]]
