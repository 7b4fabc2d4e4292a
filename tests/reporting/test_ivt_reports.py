"""Invalid-traffic reporting and operations (issue 18): the report API (tenant-scoped,
paginated, 400s naming the parameter), thresholds edited in admin reaching serving, refunds
through the real Celery worker (rollups moved, spend reconciled, audited), CTR review."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from redis import Redis

from campaigns.models import AuditEntry, LineItem
from reporting.ivt.models import IvtHourly, IvtRefund, RefundScope, RefundStatus
from reporting.ivt.review import review_ctr
from reporting.models import (
    DemandDaily,
    DemandHourly,
    DemandMonthly,
    GeoDeviceHourly,
    HourlyRollup,
    RolledDay,
    RolledMonth,
    StreamWatermark,
)
from serving.events import Event, encode_events
from serving.keys import RedisKeys, local_day
from tests.conftest import wait_for
from tests.factories import make_advertiser, make_campaign, make_line_item, make_placement
from tests.reporting.test_reports import member_of

HOUR = datetime(2026, 11, 30, 10, tzinfo=UTC)


def delivered(li: LineItem, placement_id: int, hour: datetime = HOUR, **counts: Any) -> None:
    HourlyRollup.objects.create(
        hour=hour, placement_id=placement_id, line_item_id=li.pk, campaign_id=li.campaign_id,
        advertiser_id=li.campaign.advertiser_id, **counts,
    )  # fmt: skip


def demand(li: LineItem, placement_id: int, door: str, model: Any = None, **counts: Any) -> None:
    """Our line item's measurement row (buyer 0) of HOUR, or of its day (DemandDaily)."""
    model = model or DemandHourly
    when: dict[str, datetime] = {"hour": HOUR}
    if model is DemandDaily:
        when = {"day": HOUR.replace(hour=0)}
    elif model is DemandMonthly:
        when = {"month": HOUR.replace(day=1, hour=0)}
    model.objects.create(
        **when, placement_id=placement_id, line_item_id=li.pk, buyer_id=0, currency="USD",
        door=door, campaign_id=li.campaign_id, advertiser_id=li.campaign.advertiser_id, **counts,
    )  # fmt: skip


def invalid(li: LineItem, placement_id: int, reason: str, **counts: Any) -> None:
    IvtHourly.objects.create(
        hour=HOUR, placement_id=placement_id, line_item_id=li.pk, campaign_id=li.campaign_id,
        advertiser_id=li.campaign.advertiser_id, reason=reason, currency="USD", **counts,
    )  # fmt: skip


@pytest.fixture
def two_orgs(db: None) -> dict[str, Any]:
    ours, theirs = make_advertiser("Ours"), make_advertiser("Theirs")
    placement = make_placement()
    li = make_line_item(make_campaign(ours), "2.00")
    other = make_line_item(make_campaign(theirs), "2.00")
    delivered(li, placement.pk, impressions=90, clicks=3, spend=Decimal("0.18"))
    invalid(li, placement.pk, "datacenter", impressions=8, withheld=Decimal("0.016"))
    invalid(li, placement.pk, "fast_click", clicks=2, withheld=Decimal("0.01"))
    invalid(li, placement.pk, "network_changed", flagged_impressions=5)
    invalid(other, placement.pk, "crawler", impressions=50)
    return {"ours": ours, "placement": placement, "li": li}


def test_the_report_sums_per_reason_with_the_ivt_rate_of_the_callers_rows(
    two_orgs: dict[str, Any], django_assert_max_num_queries: Any
) -> None:
    client = member_of(two_orgs["ours"])
    with django_assert_max_num_queries(12):
        answer = client.get("/api/v1/reports/ivt/", {"since": "2026-11-30T00:00:00Z"})
    assert answer.status_code == 200
    body = answer.json()
    assert body["count"] == 3  # not the other organisation's crawler row
    first = body["results"][0]
    assert (first["reason"], first["invalid_impressions"], first["withheld"]) == (
        "datacenter", 8, "0.016000000",
    )  # fmt: skip
    assert (first["billed_impressions"], first["billed_clicks"]) == (90, 3)
    # 8 of 98 impressions and 2 of 5 clicks were invalid on this placement and line item.
    assert (first["impression_ivt_rate"], first["click_ivt_rate"]) == (0.081633, 0.4)
    flagged = next(r for r in body["results"] if r["reason"] == "network_changed")
    assert (flagged["flagged_impressions"], flagged["invalid_impressions"]) == (5, 0)


def test_the_report_paginates_and_filters(two_orgs: dict[str, Any]) -> None:
    client = member_of(two_orgs["ours"])
    page = client.get("/api/v1/reports/ivt/", {"reason": "fast_click"}).json()
    assert [r["reason"] for r in page["results"]] == ["fast_click"]
    assert (page["count"], page["next"], page["previous"]) == (1, None, None)
    assert client.get("/api/v1/reports/ivt/", {"page": 9}).status_code == 404


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"reason": "bogus"}, "reason"),
        ({"placement": "x"}, "placement"),
        ({"since": "May"}, "since"),
    ],
)
def test_bad_report_parameters_are_a_400_naming_them(
    two_orgs: dict[str, Any], params: dict[str, str], named: str
) -> None:
    answer = member_of(two_orgs["ours"]).get("/api/v1/reports/ivt/", params)
    assert answer.status_code == 400
    assert named in answer.content.decode()


def staff_client() -> Client:
    staff = get_user_model().objects.create_superuser("ops", password="pw-12345-long")
    client = Client()
    client.force_login(staff)
    return client


def test_thresholds_edited_in_admin_are_published_for_serving(
    db: None, redis_client: Redis, django_capture_on_commit_callbacks: Any
) -> None:
    client = staff_client()
    page = client.get("/admin/reporting/ivtthresholds/", follow=True)
    assert page.status_code == 200
    form = {k: v for k, v in settings.IVT_RULES.items() if k != "enabled"}
    form.update(enabled="on", min_click_ms=2500, datacenter_action="house")
    with django_capture_on_commit_callbacks(execute=True):
        saved = client.post("/admin/reporting/ivtthresholds/1/change/", form)
    assert saved.status_code == 302
    published: Any = redis_client.get(RedisKeys(settings.REDIS_KEY_PREFIX).ivt_rules)
    assert b'"min_click_ms": 2500' in published
    assert b'"datacenter_action": "house"' in published


def test_the_rules_that_fired_most_lead_the_admin_list(two_orgs: dict[str, Any]) -> None:
    page = staff_client().get("/admin/reporting/ivthourly/")
    assert page.status_code == 200
    assert "crawler: 50 impressions" in page.content.decode()


def spend_counters(redis_client: Redis, li: LineItem, nanos: int) -> tuple[str, str]:
    keys = RedisKeys(settings.REDIS_KEY_PREFIX)
    day = keys.spend(local_day(HOUR.timestamp(), "UTC"), li.campaign_id)
    life = keys.lifetime_spend(li.campaign_id)
    for key in (day, life):
        redis_client.hset(key, mapping={"s": nanos, f"s:{li.pk}": nanos})
    return day, life


def test_a_placement_refund_moves_billed_to_invalid_and_reconciles_spend(
    celery_worker: None, redis_client: Redis
) -> None:
    org = make_advertiser()
    placement, li = make_placement(), make_line_item(make_campaign(org), "2.00")
    delivered(li, placement.pk, impressions=90, clicks=3, spend=Decimal("0.18"))
    delivered(li, placement.pk, HOUR + timedelta(hours=3), impressions=7, spend=Decimal("0.01"))
    # the demand rollup of the same hour, per door, and its day already rolled up
    demand(li, placement.pk, "v1", impressions=60, clicks=3, spend=Decimal("0.12"), viewable=40)
    demand(li, placement.pk, "openrtb", impressions=30, spend=Decimal("0.06"))
    demand(li, placement.pk, "v1", DemandDaily, impressions=60, clicks=3, spend=Decimal("0.12"))
    demand(li, placement.pk, "openrtb", DemandDaily, impressions=30, spend=Decimal("0.06"))
    RolledDay.objects.create(day=HOUR.replace(hour=0))
    demand(li, placement.pk, "v1", DemandMonthly, impressions=60, clicks=3, spend=Decimal("0.12"))
    RolledMonth.objects.create(month=HOUR.replace(day=1, hour=0))
    day, life = spend_counters(redis_client, li, 190_000_000)
    staff = staff_client()

    # given a refund of the placement asked for in admin, from 10:20 to 11:00
    answer = staff.post("/admin/reporting/ivtrefund/add/", {
        "scope": "placement", "placement_id": placement.pk, "pseudonym": "",
        "start_0": "2026-11-30", "start_1": "10:20:00", "end_0": "2026-11-30",
        "end_1": "11:00:00", "note": "bot farm",
    })  # fmt: skip
    assert answer.status_code == 302, answer.content.decode()[:2000]

    # when the worker runs it
    refund = wait_for(lambda: IvtRefund.objects.filter(status=RefundStatus.DONE).first())

    # then the hour it touches moved (whole hours), not the later one
    assert (refund.impressions, refund.clicks, refund.refunded) == (90, 3, Decimal("0.18"))
    row = HourlyRollup.objects.get(hour=HOUR)
    assert (row.impressions, row.clicks, row.spend) == (0, 0, Decimal(0))
    assert HourlyRollup.objects.get(hour=HOUR + timedelta(hours=3)).impressions == 7
    moved = IvtHourly.objects.get(reason="refund")
    assert (moved.impressions, moved.clicks, moved.withheld) == (90, 3, Decimal("0.18"))
    for model in (DemandHourly, DemandDaily):
        assert sorted(model.objects.values_list("door", "impressions", "clicks", "spend")) == [
            ("openrtb", 0, 0, Decimal(0)), ("v1", 0, 0, Decimal(0)),
        ]  # fmt: skip
    assert DemandMonthly.objects.values_list("impressions", "spend").get() == (0, Decimal(0))
    assert DemandHourly.objects.get(door="v1").viewable == 40  # measured, still
    for key in (day, life):
        assert redis_client.hmget(key, "s", f"s:{li.pk}") == [b"10000000", b"10000000"]
    [entry] = AuditEntry.objects.for_object(refund)
    assert entry.changes["refunded"][1] == {"impressions": 90, "clicks": 3, "spend": "0.180000000"}
    assert entry.actor is not None

    # and a second run of the same refund moves nothing again
    from reporting.ivt.refunds import refund as run_refund

    run_refund(refund.pk)
    assert IvtHourly.objects.get(reason="refund").impressions == 90


def test_a_pseudonym_refund_moves_only_that_ids_events(db: None, redis_client: Redis) -> None:
    from reporting.ivt.refunds import refund as run_refund

    org = make_advertiser()
    placement, li = make_placement(), make_line_item(make_campaign(org), "2.00")
    delivered(li, placement.pk, impressions=3, spend=Decimal("0.000030"))
    demand(li, placement.pk, "v1", impressions=2, spend=Decimal("0.000020"))
    demand(li, placement.pk, "vast", impressions=1, spend=Decimal("0.000010"))
    GeoDeviceHourly.objects.create(
        hour=HOUR, line_item_id=li.pk, country="US", device_type=2, currency="USD",
        impressions=3, spend=Decimal("0.000030"),
    )  # fmt: skip
    keys = RedisKeys(settings.REDIS_KEY_PREFIX)
    ts = int(HOUR.timestamp() * 1000) + 60_000
    doors = ["v1", "vast", "v1"]
    for n, who in enumerate(["farm-pseudonym", "farm-pseudonym", "someone-else"]):
        event = Event(
            t="imp", ts=ts + n, pl=placement.pk, li=li.pk, cp=li.campaign_id, adv=org.pk,
            cpm=10_000, d=f"d{n}", u=who, dr=doors[n], g="US2",
        )  # fmt: skip
        redis_client.xadd(keys.events, {"v": encode_events([event])}, id=f"{ts + n}-0")
    StreamWatermark.objects.create(stream=keys.events, last_id=f"{ts + 3_600_000}-0")
    refund = IvtRefund.objects.create(
        scope=RefundScope.PSEUDONYM, pseudonym="farm-pseudonym",
        start=HOUR, end=HOUR + timedelta(hours=1),
    )  # fmt: skip

    done = run_refund(refund.pk)

    assert done is not None
    assert (done.status, done.impressions, done.refunded) == ("done", 2, Decimal("0.00002"))
    assert HourlyRollup.objects.get().impressions == 1
    # the farm's own doors' rows: someone else's v1 impression stays billed
    assert sorted(DemandHourly.objects.values_list("door", "impressions", "spend")) == [
        ("v1", 1, Decimal("0.000010000")), ("vast", 0, Decimal(0)),
    ]  # fmt: skip
    geo = GeoDeviceHourly.objects.get()
    assert (geo.impressions, geo.spend) == (1, Decimal("0.000010000"))


def test_a_placement_far_above_its_ctr_norm_is_flagged(db: None) -> None:
    placement, li = make_placement(), make_line_item(make_campaign(), "2.00")
    for days in range(1, 4):  # a 1% norm
        delivered(li, placement.pk, HOUR - timedelta(days=days), impressions=1000, clicks=10)
    delivered(li, placement.pk, impressions=500, clicks=40)  # 8%
    quiet = make_placement()
    delivered(li, quiet.pk, HOUR - timedelta(days=1), impressions=1000, clicks=10)
    delivered(li, quiet.pk, impressions=1000, clicks=25)  # 2.5%: within 5x

    assert review_ctr(HOUR) == [placement.pk]
    assert review_ctr(HOUR) == [placement.pk]  # a repeat sets, never adds
    row = IvtHourly.objects.get(reason="ctr_outlier")
    assert (row.placement_id, row.flagged_impressions, row.flagged_clicks) == (
        placement.pk, 500, 40,
    )  # fmt: skip
    assert timezone.is_aware(row.hour)


def test_a_held_pseudonyms_billed_events_before_its_hold_are_refunded(
    celery_worker: None, redis_client: Redis
) -> None:
    from reporting.ivt.refunds import refund_held
    from reporting.ivt.tasks import refund_held_task

    org = make_advertiser()
    placement, li = make_placement(), make_line_item(make_campaign(org), "2.00")
    delivered(li, placement.pk, impressions=3, spend=Decimal("0.000030"))
    demand(li, placement.pk, "v1", impressions=3, spend=Decimal("0.000030"))
    keys = RedisKeys(settings.REDIS_KEY_PREFIX)
    ts = int(HOUR.timestamp() * 1000) + 60_000
    # the farm's two billed impressions, someone else's, then the farm's invalid one (held)
    events = [("farm", ""), ("farm", ""), ("other", ""), ("farm", "id_rate")]
    for n, (who, iv) in enumerate(events):
        event = Event(
            t="imp", ts=ts + n, pl=placement.pk, li=li.pk, cp=li.campaign_id, adv=org.pk,
            cpm=10_000, d=f"d{n}", u=who, dr="v1", iv=iv,
        )  # fmt: skip
        redis_client.xadd(keys.events, {"v": encode_events([event])}, id=f"{ts + n}-0")
    redis_client.zadd(keys.ivt_held, {"farm": ts + 3})
    StreamWatermark.objects.create(stream=keys.events, last_id=f"{ts + 3_600_000}-0")

    # when the beat's job runs on the worker
    refund_held_task.delay()

    # then its refund runs there too: the farm's billed impressions only, the id forgotten
    done = wait_for(lambda: IvtRefund.objects.filter(status=RefundStatus.DONE).first())
    assert (done.impressions, done.refunded, done.pseudonym) == (2, Decimal("0.00002"), "")
    assert done.end == datetime.fromtimestamp((ts + 3) / 1000, UTC)
    assert done.start == done.end - timedelta(hours=1)
    assert HourlyRollup.objects.get().impressions == 1
    assert DemandHourly.objects.get().impressions == 1
    assert IvtHourly.objects.get(reason="refund").impressions == 2
    assert redis_client.zcard(keys.ivt_held) == 0
    assert refund_held() == []  # nothing made twice
    redis_client.zadd(keys.ivt_held, {"farm": ts + 3})  # as if the job died before forgetting
    assert refund_held() == []
    assert IvtRefund.objects.count() == 1


def test_a_pseudonym_refund_leaves_an_impression_already_taken_back(
    db: None, redis_client: Redis
) -> None:
    from reporting.ivt.refunds import refund as run_refund

    org = make_advertiser()
    placement, li = make_placement(), make_line_item(make_campaign(org), "2.00")
    # the farm's two impressions, one since taken back (pixel stuffing), and two of others'
    delivered(li, placement.pk, impressions=3, spend=Decimal("0.000030"))
    keys = RedisKeys(settings.REDIS_KEY_PREFIX)
    ts = int(HOUR.timestamp() * 1000) + 60_000
    base = Event(t="imp", ts=ts, pl=placement.pk, li=li.pk, cp=li.campaign_id, adv=org.pk,
                 cpm=10_000, d="d0", u="farm")  # fmt: skip
    events = [
        base,
        msgspec.structs.replace(base, ts=ts + 1, d="d1"),
        msgspec.structs.replace(base, t="ivi", ts=ts + 1, d="d1", iv="pixel_stuffing"),
    ]
    for n, event in enumerate(events):
        redis_client.xadd(keys.events, {"v": encode_events([event])}, id=f"{ts + n}-0")
    StreamWatermark.objects.create(stream=keys.events, last_id=f"{ts + 3_600_000}-0")
    refund = IvtRefund.objects.create(
        scope=RefundScope.PSEUDONYM, pseudonym="farm", start=HOUR, end=HOUR + timedelta(hours=1)
    )

    done = run_refund(refund.pk)

    assert done is not None
    assert (done.impressions, done.refunded) == (1, Decimal("0.00001"))
    assert HourlyRollup.objects.get().impressions == 2  # the others' stay billed
