"""The report page and its downloads over rollups whose totals are known."""

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns.models import Advertiser, LineItem, Membership, Role
from reporting.models import CreativeHourly, HourlyRollup
from reporting.reports.periods import PeriodError, period_from
from tests.factories import make_campaign, make_line_item, make_placement
from tests.reporting.report_helpers import (
    as_text,
    changes,
    csv_table,
    kpis,
    page_table,
    previous,
    xlsx_table,
)

pytestmark = pytest.mark.django_db

AUCKLAND = ZoneInfo("Pacific/Auckland")


def local_midnight(zone: ZoneInfo, days_ago: int = 0) -> datetime:
    today = timezone.now().astimezone(zone).date() - timedelta(days=days_ago)
    return datetime(today.year, today.month, today.day, tzinfo=zone)


def rollup(li: LineItem, hour: datetime, placement_id: int, **counts: object) -> None:
    hour = hour.astimezone(ZoneInfo("UTC"))
    HourlyRollup.objects.create(
        hour=hour,
        placement_id=placement_id,
        line_item_id=li.pk,
        campaign_id=li.campaign_id,
        advertiser_id=li.campaign.advertiser_id,
        **counts,
    )
    creative = li.creatives.first()
    assert creative is not None
    CreativeHourly.objects.create(
        hour=hour,
        line_item_id=li.pk,
        creative_id=creative.pk,
        campaign_id=li.campaign_id,
        advertiser_id=li.campaign.advertiser_id,
        **{k: v for k, v in counts.items() if k != "requests"},
    )


def member_of(org: Advertiser, name: str = "analyst") -> Client:
    user = get_user_model().objects.create_user(name, password="pw-12345-long")
    Membership.objects.create(user=user, advertiser=org, role=Role.ANALYST)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def book() -> dict[str, object]:
    """An Auckland organisation: a USD campaign and a EUR one, rows on four local days."""
    org = Advertiser.objects.create(name="Kiwi Outdoors", time_zone="Pacific/Auckland")
    usd = make_campaign(org, daily_budget=Decimal("10.00"))
    eur = make_campaign(org, daily_budget=Decimal("4.00"))
    eur.currency = "EUR"
    eur.save()
    placement = make_placement()
    boots = make_line_item(usd, "2.50")
    tents = make_line_item(eur, "3.00")
    today = local_midnight(AUCKLAND)
    yesterday = local_midnight(AUCKLAND, 1)
    before = local_midnight(AUCKLAND, 2)
    # Today's first local hour is yesterday in UTC (Auckland is 13 hours ahead in December).
    rollup(
        boots, today, placement.pk,
        impressions=1000, clicks=25, errors=10, spend=Decimal("2.5"), requests=1200,
    )  # fmt: skip
    rollup(tents, today, placement.pk, impressions=400, clicks=0, spend=Decimal("1.2"))
    rollup(boots, yesterday, placement.pk, impressions=300, clicks=3, spend=Decimal("0.75"))
    rollup(
        boots, yesterday + timedelta(hours=23), placement.pk,
        impressions=200, clicks=2, spend=Decimal("0.5"),
    )  # fmt: skip
    rollup(boots, before, placement.pk, impressions=250, clicks=5, spend=Decimal("0.625"))
    return {"org": org, "usd": usd, "eur": eur, "boots": boots, "tents": tents, "pl": placement}


def test_today_is_the_organisations_day_not_utcs(book: dict[str, object]) -> None:
    client = member_of(book["org"])  # type: ignore[arg-type]

    page = client.get("/reports/?range=today").content.decode()

    assert "data-zone>Pacific/Auckland<" in page
    assert kpis(page, "USD") == {
        "impressions": "1000",
        "clicks": "25",
        "ctr": "2.50",
        "spend": "2.50",
        "ecpm": "2.50",
        "cpc": "0.10",
        "error_rate": "1.00",
    }
    assert kpis(page, "EUR")["spend"] == "1.20"
    assert "never added" in page  # two currencies, shown apart
    today = local_midnight(AUCKLAND)
    assert page_table(page, "hour")[1][:3] == [f"{today:%Y-%m-%d} 00:00", "EUR", "400"]
    assert page_table(page, "day")[1:] == [
        [f"{today:%Y-%m-%d}", "EUR", "400", "0", "0.00", "1.20", "3.00", "-", "0.00"],
        [f"{today:%Y-%m-%d}", "USD", "1000", "25", "2.50", "2.50", "2.50", "0.10", "1.00"],
    ]


def test_yesterday_compares_with_the_day_before(book: dict[str, object]) -> None:
    client = member_of(book["org"])  # type: ignore[arg-type]

    page = client.get("/reports/?range=yesterday").content.decode()

    assert kpis(page, "USD")["impressions"] == "500"
    assert kpis(page, "USD")["spend"] == "1.25"
    assert previous(page, "USD")["impressions"] == "250"
    assert previous(page, "USD")["spend"] == "0.63"  # 0.625 rounded half up
    assert changes(page, "USD")["impressions"] == "+100.00 %"
    assert changes(page, "USD")["ctr"] == "-50.00 %"  # 1.00 % against 2.00 %
    assert "EUR" not in kpis(page, "USD")


def test_every_table_has_the_same_numbers_on_the_page_in_csv_and_xlsx(
    book: dict[str, object],
) -> None:
    client = member_of(book["org"])  # type: ignore[arg-type]
    query = "range=last_7_days"
    page = client.get(f"/reports/?{query}").content.decode()

    for key in ("campaign", "line_item", "creative", "placement", "day", "hour"):
        shown = page_table(page, key)
        assert len(shown) > 1, key
        assert csv_table(client, key, query) == shown, key
        assert as_text(xlsx_table(client, key, query)) == shown, key

    campaigns = page_table(page, "campaign")
    usd = book["usd"]
    assert campaigns[0][-5:] == ["Budget used %", "Conversions", "Conversion rate %", "CPA", "ROAS"]
    # 1,750 impressions over seven days: 4.375 of a 10.00 daily budget x 7 days; no conversions.
    assert campaigns[1][:-4] == [
        usd.name, "USD", "1750", "35", "2.00", "4.38", "2.50", "0.13", "0.57", "6.25",  # type: ignore[attr-defined]
    ]  # fmt: skip
    assert campaigns[1][-4] == "0"


def test_an_advertiser_sees_only_its_organisation_and_staff_see_all(
    book: dict[str, object],
) -> None:
    other = Advertiser.objects.create(name="Other Co")
    theirs = make_line_item(make_campaign(other), "1.00")
    rollup(theirs, timezone.now(), 1, impressions=7777, spend=Decimal("7"))
    client = member_of(book["org"])  # type: ignore[arg-type]

    page = client.get("/reports/?range=last_7_days").content.decode()
    download = client.get("/reports/download/line_item.csv?range=last_7_days").content.decode()

    assert "7777" not in page and "7777" not in download
    assert theirs.name not in page
    staff = get_user_model().objects.create_user("ops", password="pw-12345-long", is_staff=True)
    ops = Client()
    ops.force_login(staff)
    assert "7777" in ops.get("/reports/download/line_item.csv?range=last_7_days").content.decode()


def test_the_report_runs_the_same_number_of_queries_whatever_the_rows(
    book: dict[str, object],
) -> None:
    client = member_of(book["org"])  # type: ignore[arg-type]
    client.get("/reports/?range=last_7_days")  # warm the session and caches
    with CaptureQueriesContext(connection) as few:
        assert client.get("/reports/?range=last_7_days").status_code == 200

    placement = make_placement()
    for _ in range(6):
        campaign = make_campaign(book["org"])  # type: ignore[arg-type]
        for _ in range(3):
            li = make_line_item(campaign, "1.00")
            rollup(li, timezone.now(), placement.pk, impressions=10, spend=Decimal("0.01"))
    with CaptureQueriesContext(connection) as many:
        page = client.get("/reports/?range=last_7_days")
    assert page.status_code == 200
    assert len(page_table(page.content.decode(), "line_item")) == 1 + 2 + 18
    assert len(many.captured_queries) == len(few.captured_queries)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("range=fortnight", "range"),
        ("range=custom&from=2026-01-01", "from"),
        ("range=custom&from=2026-02-30&to=2026-03-01", "from"),
        ("range=custom&from=2026-03-02&to=2026-03-01", "to"),
        ("range=custom&from=2020-01-01&to=2026-01-01", "to"),
    ],
)
def test_a_period_that_cannot_be_read_is_a_400_naming_the_field(
    book: dict[str, object], query: str, field: str
) -> None:
    client = member_of(book["org"])  # type: ignore[arg-type]

    page = client.get(f"/reports/?{query}")
    download = client.get(f"/reports/download/day.csv?{query}")

    assert page.status_code == 400
    assert f'data-error="{field}"' in page.content.decode()
    assert download.status_code == 400
    assert download.content.decode().startswith(f"{field}:")


def test_an_unknown_table_or_format_is_404(book: dict[str, object]) -> None:
    client = member_of(book["org"])  # type: ignore[arg-type]

    assert client.get("/reports/download/users.csv").status_code == 404
    assert client.get("/reports/download/day.pdf").status_code == 404


def test_a_custom_period_covers_whole_local_days_and_its_previous_period() -> None:
    now = datetime(2026, 3, 29, 12, 30, tzinfo=ZoneInfo("UTC"))  # DST starts in Paris
    paris = ZoneInfo("Europe/Paris")

    period = period_from({"range": "custom", "from": "2026-03-28", "to": "2026-03-29"}, paris, now)

    assert period.start == datetime(2026, 3, 28, tzinfo=paris)
    assert period.end == datetime(2026, 3, 29, 13, tzinfo=ZoneInfo("UTC"))  # the next hour
    assert period.days == 2
    before = period.previous()
    assert (before.first.isoformat(), before.last.isoformat()) == ("2026-03-26", "2026-03-27")
    assert before.start == datetime(2026, 3, 26, tzinfo=paris)
    assert before.end == datetime(2026, 3, 27, 15, 0, tzinfo=paris)
    with pytest.raises(PeriodError):
        period_from({"range": "custom", "from": "2026-04-01", "to": "2026-04-02"}, paris, now)


def test_one_campaigns_report_links_its_pacing_chart_and_refuses_anothers(
    book: dict[str, object],
) -> None:
    client = member_of(book["org"])  # type: ignore[arg-type]
    usd, eur = book["usd"], book["eur"]
    other = make_campaign(Advertiser.objects.create(name="Elsewhere"))

    page = client.get(f"/reports/?range=last_7_days&campaign={usd.pk}").content.decode()  # type: ignore[attr-defined]
    everything = client.get("/reports/?range=last_7_days").content.decode()

    assert [row[0] for row in page_table(page, "campaign")[1:]] == [usd.name]  # type: ignore[attr-defined]
    assert "EUR" not in kpis(page, "USD") and 'data-kpis="EUR"' not in page
    assert f'href="/reports/pacing/{eur.pk}/"' in everything  # type: ignore[attr-defined]
    csv = csv_table(client, "line_item", f"range=last_7_days&campaign={usd.pk}")  # type: ignore[attr-defined]
    assert len(csv) == 2
    assert client.get(f"/reports/?campaign={other.pk}").status_code == 404
    assert client.get(f"/reports/download/day.csv?campaign={other.pk}").status_code == 404
    assert client.get("/reports/?campaign=x1").status_code == 404
