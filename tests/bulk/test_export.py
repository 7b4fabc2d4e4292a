"""Export: the same format out, safe to open in a spreadsheet, and back in unchanged."""

import csv
import io
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from campaigns import services
from campaigns.bulk.columns import HEADERS
from campaigns.bulk.export import export_csv
from campaigns.models import Advertiser, Campaign, LineItem
from tests.bulk.helpers import dry_run, parse_csv, upload_and_apply
from tests.factories import make_campaign, make_line_item

pytestmark = pytest.mark.django_db


def write_rows(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=HEADERS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def test_the_export_lists_every_live_object_in_the_organisations_time_zone() -> None:
    org = Advertiser.objects.create(name="Acme", time_zone="Europe/Paris")
    campaign = make_campaign(org)
    line_item = make_line_item(campaign, "4.50")
    weekday_mornings = [{"days": [0, 1, 2, 3, 4], "start": "07:00", "end": "10:00"}]
    services.update_line_item(line_item, dayparts=weekday_mornings, countries=["US", "DE"])
    archived = make_line_item(campaign, "1.00")
    services.archive_line_item(archived)
    make_campaign()  # another organisation's

    rows = parse_csv(export_csv(org))

    assert [(r["Entity"], r["Campaign Id"], r["Line Item Id"]) for r in rows] == [
        ("Campaign", str(campaign.pk), ""),
        ("Line Item", str(campaign.pk), str(line_item.pk)),
        ("Creative Assignment", str(campaign.pk), str(line_item.pk)),
    ]
    assert rows[0]["Start"] == campaign.start_at.astimezone(ZoneInfo("Europe/Paris")).isoformat()
    assert rows[0]["Start"].endswith(("+01:00", "+02:00"))
    line = rows[1]
    assert (line["Operation"], line["Bid"], line["Countries"], line["Dayparts"]) == (
        "update",
        "4.50",
        "US;DE",
        "0-4 07:00-10:00",
    )


def test_formula_like_cells_are_escaped_on_export_and_unescaped_on_upload() -> None:
    campaign = make_campaign()
    services.update_campaign(campaign, name='=HYPERLINK("http://evil")')
    line_item = make_line_item(campaign, "2.00")
    services.update_line_item(line_item, name="-10% boots", keywords=["@home", "+sale", "boots"])

    text = export_csv(campaign.advertiser)
    upload, plan = dry_run(campaign.advertiser, text.encode())

    assert "'=HYPERLINK" in text
    assert "'-10% boots" in text
    assert "'@home;+sale;boots" in text
    assert upload.summary == {
        "Campaign": {"unchanged": 1},
        "Line Item": {"unchanged": 1},
        "Creative Assignment": {"unchanged": 1},
    }
    assert plan is not None and plan.diff() == []


def test_export_edit_upload_round_trips() -> None:
    campaign = make_campaign()
    line_item = make_line_item(campaign, "4.50")
    rows = parse_csv(export_csv(campaign.advertiser))
    rows[0]["Daily Budget"] = "75"
    rows[1]["Bid"] = "5.10"
    rows[1]["Frequency Caps"] = "2/hour"
    rows[2]["Weight"] = "4"

    upload = upload_and_apply(campaign.advertiser, write_rows(rows))

    assert upload.summary == {
        "Campaign": {"update": 1},
        "Line Item": {"update": 1},
        "Creative Assignment": {"update": 1},
    }
    campaign.refresh_from_db()
    line_item = LineItem.objects.get(pk=line_item.pk)
    assert campaign.daily_budget == Decimal("75")
    assert (line_item.bid, line_item.frequency_caps) == (
        Decimal("5.10"),
        [{"count": 2, "period": "hour"}],
    )
    assert line_item.assignments.get().weight == 4
    assert parse_csv(export_csv(campaign.advertiser)) == [
        rows[0] | {"Daily Budget": "75.00"},
        rows[1],
        rows[2],
    ]
    assert Campaign.objects.count() == 1
