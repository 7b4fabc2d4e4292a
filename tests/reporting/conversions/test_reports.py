"""Conversions, conversion rate, CPA and ROAS in the report's campaign table, per currency."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from campaigns.models import Advertiser, Campaign
from reporting.conversions.models import Attribution, Conversion
from tests.factories import make_campaign, make_line_item
from tests.reporting.report_helpers import csv_table, page_table
from tests.reporting.test_reports import member_of, rollup

pytestmark = pytest.mark.django_db


def convert(campaign: Campaign, value: str | None, attribution: str = Attribution.CLICK) -> None:
    Conversion.objects.create(
        advertiser_id=campaign.advertiser_id, event="purchase", converted_at=timezone.now(),
        source="postback", attribution=attribution,
        campaign_id=campaign.pk if attribution != Attribution.NONE else 0,
        value=Decimal(value) if value else None, currency=campaign.currency,
        attributed_value=Decimal(value) if value and attribution != Attribution.NONE else None,
        stream_id="1-0",
    )  # fmt: skip


def test_the_campaign_table_shows_conversions_cpa_and_roas_in_each_currency() -> None:
    org = Advertiser.objects.create(name="Two Currencies")
    usd, eur = make_campaign(org), make_campaign(org)
    Campaign.objects.filter(pk=eur.pk).update(currency="EUR")
    eur.refresh_from_db()
    hour = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    for campaign, spend in ((usd, "20.00"), (eur, "5.00")):
        li = make_line_item(campaign, "2.00")
        rollup(li, hour, 1, impressions=1000, clicks=40, spend=Decimal(spend))
    convert(usd, "50.00")
    convert(usd, "30.00")
    convert(usd, None, Attribution.VIEW)
    convert(usd, "999.00", Attribution.NONE)  # not credited to any campaign: not counted
    convert(eur, "20.00")

    client = member_of(org)
    page = client.get("/reports/?range=today").content.decode()
    table = page_table(page, "campaign")
    header = table[0]
    rows = {r[header.index("Currency")]: r for r in table[1:]}
    at = header.index("Conversions")
    assert header[at:] == ["Conversions", "Conversion rate %", "CPA", "ROAS"]
    # USD: 3 of 40 clicks = 7.50 %, 20.00 / 3 = 6.67, (50 + 30) / 20.00 = 4.00.
    assert rows["USD"][at:] == ["3", "7.50", "6.67", "4.00"]
    # EUR apart: 1 of 40, 5.00 per conversion, 20 / 5 = 4.00; never added to the USD row.
    assert rows["EUR"][at:] == ["1", "2.50", "5.00", "4.00"]
    assert csv_table(client, "campaign", "range=today") == table
