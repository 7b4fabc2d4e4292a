"""The apply: every row through the services, in one transaction, with a result file."""

from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from campaigns import services
from campaigns.bulk.apply import Applier, RowFailed, apply_upload, record_progress, rows_processed
from campaigns.bulk.columns import Entity, Operation
from campaigns.bulk.services import queue_upload
from campaigns.bulk.steps import Plan, Step
from campaigns.models import AuditEntry, BulkUpload, Campaign, LineItem, LineItemCreative
from tests.bulk.helpers import (
    START,
    csv_bytes,
    dry_run,
    member,
    new_campaign,
    new_line_item,
    parse_csv,
    upload_and_apply,
)
from tests.factories import make_advertiser, make_campaign, make_creative, make_line_item

pytestmark = pytest.mark.django_db


def test_new_campaigns_line_items_and_assignments_are_created_with_their_settings() -> None:
    org = make_advertiser()
    user = member(org)
    creative = make_creative(org)
    data = csv_bytes(
        new_campaign({"Campaign Id": "tmp:boots", "Status": "active", "End": "2027-04-01"}),
        new_line_item(
            {
                "Campaign Id": "tmp:boots",
                "Line Item Id": "tmp:mrec",
                "Status": "paused",
                "Frequency Caps": "3/day;10/lifetime",
                "Dayparts": "0-4 07:00-10:00;5,6 10:00-22:00",
                "Device Types": "2;4",
                "Child Safe": "yes",
            }
        ),
        {
            "Entity": "Creative Assignment",
            "Operation": "create",
            "Line Item Id": "tmp:mrec",
            "Creative Id": str(creative.pk),
            "Weight": "3",
        },
        new_line_item({"Campaign Id": "tmp:boots"}),
    )

    upload = upload_and_apply(org, data, by=user)

    assert upload.status == "done"
    assert (upload.rows_total, upload.rows_processed, upload.errors) == (4, 4, [])
    campaign = Campaign.objects.get()
    mrec, other = LineItem.objects.order_by("pk")
    assert (campaign.name, campaign.status, campaign.start_at) == ("Boots", "active", START)
    assert campaign.currency == "USD"
    assert mrec.status == "paused"
    assert mrec.frequency_caps == [
        {"count": 3, "period": "day"},
        {"count": 10, "period": "lifetime"},
    ]
    assert mrec.dayparts == [
        {"days": [0, 1, 2, 3, 4], "start": "07:00", "end": "10:00"},
        {"days": [5, 6], "start": "10:00", "end": "22:00"},
    ]
    assert (mrec.device_types, mrec.child_safe) == ([2, 4], True)
    assert LineItemCreative.objects.get().weight == 3
    assert other.campaign == campaign
    assert set(AuditEntry.objects.values_list("actor", flat=True)) == {user.pk}
    rows = parse_csv(upload.result_csv)
    assert [(r["Campaign Id"], r["Line Item Id"], r["Result"], r["Message"]) for r in rows] == [
        (str(campaign.pk), "", "created", f"tmp:boots is {campaign.pk}"),
        (str(campaign.pk), str(mrec.pk), "created", f"tmp:mrec is {mrec.pk}"),
        ("", str(mrec.pk), "created", ""),
        (str(campaign.pk), str(other.pk), "created", ""),
    ]


def test_updates_change_only_the_filled_cells_and_status_moves_use_the_services() -> None:
    campaign = make_campaign(daily_budget=Decimal("100"))
    line_item = make_line_item(campaign, "2.00")
    services.update_line_item(line_item, countries=["US"])
    data = csv_bytes(
        {
            "Entity": "Campaign",
            "Operation": "update",
            "Campaign Id": str(campaign.pk),
            "Daily Budget": "80",
            "Status": "paused",
        },
        {
            "Entity": "Line Item",
            "Operation": "update",
            "Line Item Id": str(line_item.pk),
            "Bid": "2.25",
            "Regions": "US-CA",
        },
    )

    upload = upload_and_apply(campaign.advertiser, data)

    campaign.refresh_from_db()
    line_item.refresh_from_db()
    assert (campaign.daily_budget, campaign.status) == (Decimal("80"), "paused")
    assert (line_item.bid, line_item.countries, line_item.regions) == (
        Decimal("2.25"),
        ["US"],
        ["US-CA"],
    )
    assert [r["Result"] for r in parse_csv(upload.result_csv)] == ["updated", "updated"]
    assert AuditEntry.objects.for_object(campaign)[0].changes == {"status": ["active", "paused"]}


def test_archive_archives_campaigns_with_their_line_items_and_unassigns_creatives() -> None:
    campaign = make_campaign()
    line_item = make_line_item(campaign, "2.00")
    kept = make_line_item(make_campaign(campaign.advertiser), "3.00")
    assignment = LineItemCreative.objects.get(line_item=kept)
    data = csv_bytes(
        {"Entity": "Campaign", "Operation": "archive", "Campaign Id": str(campaign.pk)},
        {
            "Entity": "Creative Assignment",
            "Operation": "archive",
            "Line Item Id": str(kept.pk),
            "Creative Id": str(assignment.creative_id),
        },
    )

    upload = upload_and_apply(campaign.advertiser, data)

    assert upload.status == "done"
    campaign.refresh_from_db()
    line_item.refresh_from_db()
    assert (campaign.status, line_item.status) == ("archived", "archived")
    assert LineItemCreative.objects.filter(line_item=kept).exists() is False
    assert upload.summary == {"Campaign": {"archive": 1}, "Creative Assignment": {"archive": 1}}


def test_a_file_with_one_bad_row_cannot_be_applied() -> None:
    org = make_advertiser()
    upload, _ = dry_run(org, csv_bytes(new_campaign(), new_campaign({"Daily Budget": "-5"})))

    assert upload.status == "failed"
    assert queue_upload(upload, by=None) is False
    assert apply_upload(upload) == "failed"
    assert Campaign.objects.count() == 0


def test_the_apply_checks_again_and_writes_nothing_when_the_data_changed() -> None:
    campaign = make_campaign()
    data = csv_bytes(
        new_campaign({"Campaign Id": "tmp:new"}),
        new_line_item({"Campaign Id": "tmp:new"}),
        {"Entity": "Campaign", "Operation": "update", "Campaign Id": str(campaign.pk), "Name": "x"},
    )
    upload, _ = dry_run(campaign.advertiser, data)
    queue_upload(upload, by=None)
    services.archive_campaign(campaign)

    assert apply_upload(upload) == "failed"

    upload.refresh_from_db()
    assert upload.errors == [
        {"row": 4, "column": "Campaign Id", "message": "An archived campaign cannot be changed."}
    ]
    assert Campaign.objects.count() == 1
    assert [r["Result"] for r in parse_csv(upload.result_csv)] == [
        "not applied",
        "not applied",
        "error",
    ]
    assert parse_csv(upload.result_csv)[2]["Message"] == (
        "Campaign Id: An archived campaign cannot be changed."
    )


def test_a_service_refusal_rolls_back_every_row_before_it() -> None:
    # Steps the dry run would never pass: the services' own validation stops the apply.
    org = make_advertiser()
    campaign = make_campaign(org)
    plan = Plan(
        2,
        errors=[],
        steps=[
            Step(
                2,
                Entity.CAMPAIGN,
                Operation.CREATE,
                "new",
                "#2",
                fields={"name": "New", "start_at": START, "daily_budget": Decimal("5")},
            ),
            Step(
                3,
                Entity.CAMPAIGN,
                Operation.UPDATE,
                "old",
                campaign.pk,
                fields={"end_at": START, "start_at": START},
                changes={"End": [None, "x"]},
            ),
        ],
    )

    with pytest.raises(RowFailed) as failed, transaction.atomic():
        Applier(plan, org, None, progress=lambda rows: None).run()

    assert failed.value.errors[0].as_dict() == {
        "row": 3,
        "column": "End",
        "message": "The end must be after the start.",
    }
    assert list(Campaign.objects.all()) == [campaign]


def test_an_upload_is_applied_once() -> None:
    org = make_advertiser()
    upload = upload_and_apply(org, csv_bytes(new_campaign()))

    assert queue_upload(upload, by=None) is False
    assert apply_upload(upload) == "done"
    assert Campaign.objects.count() == 1
    assert rows_processed(upload) == 1


def test_progress_is_read_from_the_cache_while_the_apply_runs() -> None:
    org = make_advertiser()
    upload, _ = dry_run(org, csv_bytes(*[new_campaign()] * 3))
    BulkUpload.objects.filter(pk=upload.pk).update(status="running", started_at=timezone.now())
    upload.refresh_from_db()

    before = rows_processed(upload)
    record_progress(upload.pk, 2)

    assert (before, rows_processed(upload), upload.rows_processed) == (0, 2, 0)
