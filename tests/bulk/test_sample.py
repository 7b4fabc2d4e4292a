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

    assert (upload.status, upload.errors, upload.rows_total) == ("done", [], 12)
    assert upload.summary == {
        "Campaign": {"create": 1, "update": 2},
        "Line Item": {"create": 2, "update": 2, "archive": 1},
        "Creative Assignment": {"create": 3, "update": 1},
    }
    rain = Campaign.objects.get(name="Autumn rain jackets")
    assert (rain.status, rain.goal_type, rain.goal_target) == ("active", "clicks", Decimal("600"))
    commute = LineItem.objects.get(name="Rain jackets, commuter mornings")
    assert commute.regions == ["US-WA", "CA-BC"]
    assert LineItemCreative.objects.filter(line_item=commute).count() == 2
    assert LineItem.objects.get(name="Boots, home leaderboard").status == "archived"
    assert LineItem.objects.get(name="Tents, weekend campers").bid == Decimal("3.00")
