"""The console's campaign pages: list, the create flow's first step, edit, state changes."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from campaigns import services
from campaigns.models import AuditEntry, Campaign, CampaignStatus, Role
from campaigns.pacing.schedule import day_schedule
from campaigns.snapshot import redis_keys
from tests.console.helpers import member
from tests.factories import make_advertiser, make_campaign, make_creative, make_placement

pytestmark = pytest.mark.django_db


def test_a_manager_creates_a_campaign_in_the_organisations_time_zone() -> None:
    org = make_advertiser()
    org.time_zone = "Europe/Paris"
    org.save()
    client = member(org)

    response = client.post(
        "/campaigns/new/",
        {
            "organisation": org.pk, "name": "Autumn", "start_at": "2030-03-01T09:00",
            "daily_budget": "40", "pacing_mode": "even", "goal_type": "",
        },
    )  # fmt: skip

    campaign = Campaign.objects.get(name="Autumn")
    assert response.status_code == 302
    assert response["Location"] == f"/campaigns/{campaign.pk}/line-items/new/?step=2"
    assert campaign.status == CampaignStatus.DRAFT
    assert campaign.currency == org.currency
    assert campaign.start_at.isoformat() == "2030-03-01T08:00:00+00:00"  # 09:00 in Paris
    entry = AuditEntry.objects.get(object_id=str(campaign.pk), content_type__model="campaign")
    assert entry.action == "create" and entry.actor is not None


def test_errors_are_shown_next_to_the_field_and_nothing_is_stored() -> None:
    org = make_advertiser()
    client = member(org)

    response = client.post(
        "/campaigns/new/",
        {
            "organisation": org.pk, "name": "Bad", "start_at": "2030-03-01T09:00",
            "end_at": "2030-02-01T09:00", "daily_budget": "50", "lifetime_budget": "20",
            "pacing_mode": "even", "goal_type": "",
        },
    )  # fmt: skip
    page = response.content.decode()

    assert response.status_code == 200
    assert 'data-error-for="end_at">The end must be after the start.' in page
    assert 'data-error-for="daily_budget">The daily budget cannot exceed the lifetime' in page
    assert not Campaign.objects.filter(name="Bad").exists()


def test_edit_pause_resume_and_archive_leave_the_same_audit_entries_as_the_api() -> None:
    campaign = make_campaign(active=False)
    client = member(campaign.advertiser)

    edited = client.post(
        f"/campaigns/{campaign.pk}/edit/",
        {
            "version": campaign.version, "name": "Renamed",
            "start_at": timezone.localtime(campaign.start_at).strftime("%Y-%m-%dT%H:%M"),
            "daily_budget": "75", "pacing_mode": campaign.pacing_mode, "goal_type": "",
        },
    )  # fmt: skip
    for move in ("activate", "pause", "resume", "archive"):
        client.post(f"/campaigns/{campaign.pk}/{move}/")
    campaign.refresh_from_db()

    assert edited.status_code == 302
    assert campaign.name == "Renamed" and campaign.daily_budget == Decimal("75")
    assert campaign.status == CampaignStatus.ARCHIVED
    entries = AuditEntry.objects.for_object(campaign).order_by("id")
    assert [(e.action, e.changes.get("status", [None, None])[1]) for e in entries][-5:] == [
        ("update", None), ("status", "active"), ("status", "paused"), ("status", "active"),
        ("status", "archived"),
    ]  # fmt: skip
    assert entries.reverse()[0].changes == {"status": ["active", "archived"]}


def test_a_stale_edit_is_refused_instead_of_overwriting() -> None:
    campaign = make_campaign()
    client = member(campaign.advertiser)
    old_version = campaign.version
    services.update_campaign(campaign, name="Changed elsewhere")

    response = client.post(
        f"/campaigns/{campaign.pk}/edit/",
        {
            "version": old_version, "name": "Mine",
            "start_at": timezone.localtime(campaign.start_at).strftime("%Y-%m-%dT%H:%M"),
            "daily_budget": "75", "pacing_mode": "even", "goal_type": "",
        },
    )  # fmt: skip

    campaign.refresh_from_db()
    assert response.status_code == 200
    assert "Someone changed this campaign" in response.content.decode()
    assert campaign.name == "Changed elsewhere"


def test_an_analyst_reads_but_cannot_write() -> None:
    campaign = make_campaign(active=False)
    client = member(campaign.advertiser, Role.ANALYST)

    page = client.get(f"/campaigns/{campaign.pk}/").content.decode()
    listing = client.get("/").content.decode()
    writes = [
        client.get("/campaigns/new/").status_code,
        client.get(f"/campaigns/{campaign.pk}/edit/").status_code,
        client.post(f"/campaigns/{campaign.pk}/activate/").status_code,
        client.get(f"/campaigns/{campaign.pk}/line-items/new/").status_code,
    ]

    assert campaign.name in listing and "New campaign" not in listing
    assert "data-write-actions" not in page and "Add a line item" not in page
    assert writes == [403, 403, 403, 403]
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.DRAFT


def test_another_organisations_campaign_is_not_found() -> None:
    mine, theirs = make_campaign(), make_campaign()
    client = member(mine.advertiser, Role.ADMIN)

    codes = [
        client.get(f"/campaigns/{theirs.pk}/").status_code,
        client.get(f"/campaigns/{theirs.pk}/edit/").status_code,
        client.post(f"/campaigns/{theirs.pk}/pause/").status_code,
        client.get(f"/campaigns/{theirs.pk}/line-items/new/").status_code,
    ]

    assert codes == [404, 404, 404, 404]
    assert theirs.name not in client.get("/").content.decode()


def _delivering(advertiser, **fields):
    campaign = services.create_campaign(
        advertiser=advertiser, name=fields.pop("name", "C"),
        start_at=fields.pop("start_at", timezone.now() - timedelta(hours=1)),
        daily_budget=Decimal("10"), **fields,
    )  # fmt: skip
    return campaign


def test_the_list_says_why_each_campaign_does_or_does_not_deliver(redis_client) -> None:
    org = make_advertiser()
    make_placement(sizes=["300x250"])
    now = timezone.now()

    def campaign(
        name: str,
        *,
        creative: str | None = "approved",
        size: str = "300x250",
        start: timedelta = timedelta(hours=-1),
        move: str = "activate",
    ) -> Campaign:
        c = _delivering(org, name=name, start_at=now + start)
        li = services.create_line_item(
            campaign=c, name=f"{name} li", bid=Decimal("2"), sizes=[size]
        )
        if creative:
            made = make_creative(org, size=size)
            made.status = creative
            made.save()
            services.assign_creative(li, made)
        getattr(services, f"{move}_campaign")(c)
        return c

    delivering = campaign("Delivering one")
    review = campaign("Review one", creative="pending")
    none = campaign("Bare one", creative=None)
    nowhere = campaign("Nowhere one", size="160x600")
    scheduled = campaign("Later one", start=timedelta(days=2))
    broke = campaign("Broke one")
    services.activate_campaign(paused := campaign("Paused one"))
    services.pause_campaign(paused)
    day = day_schedule(now, org.time_zone, "even").day
    redis_client.sadd(redis_keys().exhausted(day), str(broke.pk))
    redis_client.hset(redis_keys().spend(day, delivering.pk), mapping={"s": 2_500_000_000})
    redis_client.hset(redis_keys().lifetime_spend(delivering.pk), mapping={"s": 7_250_000_000})

    page = member(org).get("/").content.decode()

    def row(c: Campaign) -> str:
        start = page.index(f'data-campaign="{c.pk}"')
        return page[start : page.index("</tr>", start)]

    assert "Delivering</span>" in row(delivering)
    assert "2.50 / 10.00 USD" in row(delivering) and "7.25" in row(delivering)
    assert "Not delivering: creatives under review" in row(review)
    assert "Not delivering: no approved creative" in row(none)
    assert "Not delivering: targeting matches no inventory" in row(nowhere)
    assert "Scheduled" in row(scheduled)
    assert "Out of daily budget" in row(broke)
    assert ">Paused</span></td>" in row(paused)


def test_the_list_filters_searches_sorts_and_pages() -> None:
    org = make_advertiser()
    for n in range(30):
        c = _delivering(org, name=f"Camp {n:02d}")
        if n % 3 == 0:
            services.activate_campaign(c)
    client = member(org)

    active = client.get("/?status=active").content.decode()
    found = client.get("/?q=Camp 07").content.decode()
    first = client.get("/?sort=name").content.decode()
    second = client.get("/?sort=name&page=2").content.decode()

    assert active.count("data-campaign=") == 10
    assert found.count("data-campaign=") == 1 and "Camp 07" in found
    assert first.count("data-campaign=") == 25 and first.index("Camp 00") < first.index("Camp 01")
    assert second.count("data-campaign=") == 5 and "Camp 29" in second
    assert "Page 1 of 2 (30 campaigns)" in first


def test_the_list_runs_a_fixed_number_of_queries(django_assert_max_num_queries) -> None:
    org = make_advertiser()
    make_placement()
    client = member(org)

    def fill(count: int) -> None:
        for n in range(count):
            c = _delivering(org, name=f"Q {n}")
            for m in range(3):
                li = services.create_line_item(
                    campaign=c, name=f"li {m}", bid=Decimal("1"), sizes=["300x250"]
                )
                services.assign_creative(li, make_creative(org))

    fill(2)
    with django_assert_max_num_queries(20) as few:
        client.get("/")
    fill(20)
    with django_assert_max_num_queries(20) as many:
        client.get("/")

    assert len(many.captured_queries) == len(few.captured_queries)
