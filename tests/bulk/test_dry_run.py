"""The dry run: what a file would change and every error, with nothing written."""

from decimal import Decimal
from typing import Any

import pytest

from campaigns import services
from campaigns.bulk.export import export_csv
from campaigns.bulk.plan import make_plan
from campaigns.bulk.sheet import decode, read
from campaigns.models import AuditEntry, BulkUpload, Campaign, LineItem, LineItemCreative
from creatives.models import Creative
from tests.bulk.helpers import csv_bytes, dry_run, member, new_campaign, new_line_item
from tests.factories import make_advertiser, make_campaign, make_creative, make_line_item

pytestmark = pytest.mark.django_db


def errors_of(upload: BulkUpload) -> list[tuple[Any, str, str]]:
    return [(e["row"], e["column"], e["message"]) for e in upload.errors]


def test_new_objects_refer_to_each_other_by_temporary_ids() -> None:
    org = make_advertiser()
    creative = make_creative(org)
    data = csv_bytes(
        new_campaign({"Campaign Id": "tmp:boots", "Status": "active"}),
        new_line_item(
            {
                "Campaign Id": "tmp:boots",
                "Line Item Id": "tmp:mrec",
                "Countries": "us;de",
                "Dayparts": "0-4 07:00-10:00",
            }
        ),
        {
            "Entity": "Creative Assignment",
            "Operation": "create",
            "Line Item Id": "tmp:mrec",
            "Creative Id": str(creative.pk),
            "Weight": "2",
        },
    )

    upload, plan = dry_run(org, data)

    assert upload.status == "validated"
    assert upload.errors == []
    assert upload.summary == {
        "Campaign": {"create": 1},
        "Line Item": {"create": 1},
        "Creative Assignment": {"create": 1},
    }
    assert plan is not None
    assert plan.diff() == [
        {
            "row": 2,
            "entity": "Campaign",
            "operation": "create",
            "object": "new campaign tmp:boots",
            "changes": {
                "Name": [None, "Boots"],
                "Start": [None, "2027-03-01T10:00:00+00:00"],
                "Daily Budget": [None, "50.00"],
                "Status": [None, "active"],
            },
        },
        {
            "row": 3,
            "entity": "Line Item",
            "operation": "create",
            "object": "new line item tmp:mrec",
            "changes": {
                "Name": [None, "Boots 300x250"],
                "Bid": [None, "4.50"],
                "Sizes": [None, "300x250"],
                "Countries": [None, "US;DE"],
                "Dayparts": [None, "0-4 07:00-10:00"],
            },
        },
        {
            "row": 4,
            "entity": "Creative Assignment",
            "operation": "create",
            "object": f"creative {creative.pk} on line item tmp:mrec",
            "changes": {"Weight": [None, "2"]},
        },
    ]


def test_the_dry_run_writes_nothing_but_the_upload_record() -> None:
    campaign = make_campaign()
    line_item = make_line_item(campaign, "2.00")
    audit_entries = AuditEntry.objects.count()
    data = csv_bytes(
        {
            "Entity": "Campaign",
            "Operation": "update",
            "Campaign Id": str(campaign.pk),
            "Name": "Renamed",
            "Status": "paused",
        },
        {"Entity": "Line Item", "Operation": "archive", "Line Item Id": str(line_item.pk)},
        new_campaign(),
    )

    upload, _ = dry_run(campaign.advertiser, data)

    assert upload.status == "validated"
    name = campaign.name
    campaign.refresh_from_db()
    line_item.refresh_from_db()
    assert (campaign.name, campaign.status, campaign.version) == (name, "active", 2)
    assert line_item.status == "active"
    assert Campaign.objects.count() == 1
    assert AuditEntry.objects.count() == audit_entries


def test_blank_cells_leave_fields_unchanged_and_remove_empties_them() -> None:
    campaign = make_campaign(lifetime_budget=None)
    line_item = make_line_item(campaign, "2.00")
    services.update_line_item(line_item, countries=["US"], keywords=["boots"])
    data = csv_bytes(
        {
            "Entity": "Line Item",
            "Operation": "update",
            "Line Item Id": str(line_item.pk),
            "Bid": "2.5",
            "Countries": "",
            "Keywords": "[remove]",
        },
    )

    upload, plan = dry_run(campaign.advertiser, data)

    assert upload.errors == []
    assert plan is not None
    [step] = plan.steps
    assert step.fields == {"bid": Decimal("2.5"), "keywords": []}
    assert step.changes == {"Bid": ["2.00", "2.50"], "Keywords": ["boots", ""]}


def test_an_export_uploaded_unchanged_changes_nothing() -> None:
    campaign = make_campaign()
    make_line_item(campaign, "2.00")

    upload, plan = dry_run(campaign.advertiser, export_csv(campaign.advertiser).encode())

    assert upload.status == "validated"
    assert upload.summary == {
        "Campaign": {"unchanged": 1},
        "Line Item": {"unchanged": 1},
        "Creative Assignment": {"unchanged": 1},
    }
    assert plan is not None and plan.diff() == []


def test_archive_shows_the_status_change_and_archived_objects_cannot_change() -> None:
    campaign = make_campaign()
    line_item = make_line_item(campaign, "2.00")
    data = csv_bytes(
        {
            "Entity": "Campaign",
            "Operation": "archive",
            "Campaign Id": str(campaign.pk),
            "Name": "ignored on archive",
        },
        {
            "Entity": "Line Item",
            "Operation": "update",
            "Line Item Id": str(line_item.pk),
            "Bid": "3",
        },
    )

    upload, _ = dry_run(campaign.advertiser, data)

    assert errors_of(upload) == [(3, "Line Item Id", "An archived line item cannot be changed.")]


def test_every_row_error_names_its_row_column_and_reason() -> None:
    org = make_advertiser()
    data = csv_bytes(
        new_campaign({"Daily Budget": "50", "Lifetime Budget": "20", "Bid": "3"}),
        new_line_item({"Campaign Id": "tmp:nowhere"}),
        {"Entity": "Campaign", "Operation": "create", "Name": "x", "Start": "tomorrow"},
        new_line_item({"Entity": "Line Item", "Operation": "delete"}),
        {"Entity": "Keyword", "Operation": "create"},
    )

    upload, _ = dry_run(org, data)

    assert upload.status == "failed"
    assert errors_of(upload) == [
        (2, "Bid", "Bid does not apply to Campaign rows."),
        (
            3,
            "Campaign Id",
            "No campaign with the temporary id tmp:nowhere is created above this row.",
        ),
        (
            4,
            "Start",
            "'tomorrow' is not an ISO 8601 date and time like 2026-03-01T09:00 "
            "(UTC time) or 2026-03-01T09:00+01:00.",
        ),
        (4, "Daily Budget", "Required to create a campaign."),
        (5, "Operation", "Unknown operation 'delete' (use create, update or archive)."),
        (6, "Entity", "Unknown entity 'Keyword' (use Campaign, Line Item, Creative Assignment)."),
    ]


def test_model_validation_errors_are_reported_under_their_columns() -> None:
    campaign = make_campaign()
    data = csv_bytes(
        new_campaign({"Daily Budget": "50", "Lifetime Budget": "20", "Goal Target": "10"}),
        new_line_item(
            {
                "Campaign Id": str(campaign.pk),
                "Bid Strategy": "dynamic_down",
                "Bid Type": "cpc",
                "Sizes": "300x250;big",
                "Bid": "1.23456",
            }
        ),
    )

    upload, _ = dry_run(campaign.advertiser, data)

    assert errors_of(upload) == [
        (2, "Daily Budget", "The daily budget cannot exceed the lifetime budget."),
        (2, "Goal Type", "Choose what the goal target counts."),
        (3, "Bid", "Ensure that there are no more than 4 decimal places."),
        (3, "Sizes", "Sizes must look like 300x250; not big."),
        (3, "Click URL", "A CPC line item needs a click URL."),
        (3, "Min Bid", "A dynamic strategy needs a minimum bid."),
    ]


def test_ids_must_fit_the_operation() -> None:
    campaign = make_campaign()
    data = csv_bytes(
        new_campaign({"Campaign Id": str(campaign.pk)}),
        {"Entity": "Campaign", "Operation": "update", "Campaign Id": "tmp:boots", "Name": "x"},
        {"Entity": "Campaign", "Operation": "archive", "Campaign Id": "boots"},
        {"Entity": "Line Item", "Operation": "update", "Name": "x"},
    )

    upload, _ = dry_run(campaign.advertiser, data)

    assert errors_of(upload) == [
        (
            2,
            "Campaign Id",
            "A new campaign has no id yet: leave Campaign Id empty or use a temporary id.",
        ),
        (3, "Campaign Id", "To update a campaign, give its id, not a temporary id."),
        (
            4,
            "Campaign Id",
            "'boots' is not an id: give a number, or a temporary id like tmp:boots.",
        ),
        (5, "Line Item Id", "Give the id of the line item to update."),
    ]


def test_status_moves_follow_the_services_rules() -> None:
    active = make_campaign()
    draft = make_campaign(active.advertiser, active=False)
    data = csv_bytes(
        {
            "Entity": "Campaign",
            "Operation": "update",
            "Campaign Id": str(draft.pk),
            "Status": "paused",
        },
        {
            "Entity": "Campaign",
            "Operation": "update",
            "Campaign Id": str(active.pk),
            "Status": "draft",
        },
        new_campaign({"Status": "paused"}),
        new_campaign({"Status": "archived"}),
    )

    upload, _ = dry_run(active.advertiser, data)

    assert errors_of(upload) == [
        (2, "Status", "Draft campaigns cannot become paused."),
        (3, "Status", "Active campaigns cannot become draft."),
        (4, "Status", "A new campaign is a draft: it cannot become paused."),
        (
            5,
            "Status",
            "Unknown status 'archived' (use draft, active, paused; to archive, use "
            "the archive operation).",
        ),
    ]


def test_a_row_longer_than_the_header_is_an_error() -> None:
    data = b"Entity,Operation,Campaign Id,Name\r\nCampaign,create,,Boots,oops\r\n"

    upload, _ = dry_run(make_advertiser(), data)

    assert errors_of(upload) == [
        (2, "", "The row has 5 cells; the header has 4."),
        (2, "Start", "Required to create a campaign."),
        (2, "Daily Budget", "Required to create a campaign."),
    ]


def test_duplicate_temporary_ids_are_an_error() -> None:
    org = make_advertiser()
    data = csv_bytes(new_campaign({"Campaign Id": "tmp:a"}), new_campaign({"Campaign Id": "tmp:a"}))

    upload, _ = dry_run(org, data)

    assert errors_of(upload) == [
        (3, "Campaign Id", "The temporary id tmp:a is already used on row 2.")
    ]


def test_another_organisations_objects_are_not_found() -> None:
    mine, theirs = make_advertiser(), make_campaign()
    their_line_item = make_line_item(theirs, "2.00")
    their_creative = Creative.objects.get(advertiser=theirs.advertiser)
    own = make_line_item(make_campaign(mine), "1.00")
    data = csv_bytes(
        {"Entity": "Campaign", "Operation": "update", "Campaign Id": str(theirs.pk), "Name": "x"},
        new_line_item({"Campaign Id": str(theirs.pk)}),
        {"Entity": "Line Item", "Operation": "archive", "Line Item Id": str(their_line_item.pk)},
        {
            "Entity": "Creative Assignment",
            "Operation": "create",
            "Line Item Id": str(own.pk),
            "Creative Id": str(their_creative.pk),
        },
        {"Entity": "Campaign", "Operation": "update", "Campaign Id": "99999999999999999999"},
    )

    upload, _ = dry_run(mine, data)

    assert errors_of(upload) == [
        (2, "Campaign Id", f"Campaign {theirs.pk} not found."),
        (3, "Campaign Id", f"Campaign {theirs.pk} not found."),
        (4, "Line Item Id", f"Line item {their_line_item.pk} not found."),
        (5, "Creative Id", f"Creative {their_creative.pk} not found."),
        (6, "Campaign Id", "Campaign 99999999999999999999 not found."),
    ]
    assert LineItemCreative.objects.filter(line_item=own).count() == 1


def test_unknown_and_missing_columns_are_named() -> None:
    org = make_advertiser()

    unknown, _ = dry_run(org, b"Entity,Operation,Budget,Colour\r\nCampaign,create,1,red\r\n")
    missing, _ = dry_run(org, b"Entity,Name\r\nCampaign,x\r\n")
    ids, _ = dry_run(org, b"Entity,Operation\r\nLine Item,create\r\n")

    assert errors_of(unknown) == [
        (1, "Budget", 'Unknown column "Budget".'),
        (1, "Colour", 'Unknown column "Colour".'),
    ]
    assert errors_of(missing) == [(1, "Operation", "Missing columns: Operation.")]
    assert errors_of(ids) == [
        (1, "Campaign Id, Line Item Id", "Missing columns: Campaign Id, Line Item Id.")
    ]


def test_utf8_with_or_without_a_byte_order_mark_and_nothing_else() -> None:
    org = make_advertiser()
    row = new_campaign({"Name": "Bottes d'été"})

    latin1_bytes = csv_bytes(row).decode().encode("latin-1")

    with_bom, _ = dry_run(org, csv_bytes(row, bom=True))
    latin1, _ = dry_run(org, latin1_bytes)
    utf16, _ = dry_run(org, csv_bytes(row).decode().encode("utf-16"))

    assert with_bom.status == "validated"
    position = latin1_bytes.index("é".encode("latin-1")) + 1
    assert errors_of(latin1) == [
        (None, "", f"The file is not UTF-8 (byte {position} cannot be read): save it as CSV UTF-8.")
    ]
    assert utf16.status == "failed"
    assert utf16.errors[0]["message"].startswith("The file is not UTF-8")


def test_a_binary_file_is_refused() -> None:
    xlsx_like, _ = dry_run(make_advertiser(), b"PK\x03\x04\x00\x00Entity,Operation\r\n")

    assert errors_of(xlsx_like) == [
        (None, "", "The file holds NUL bytes: it is not a CSV text file.")
    ]


def test_files_over_the_size_or_row_limit_are_refused(settings: Any) -> None:
    org = make_advertiser()
    settings.BULKSHEET_MAX_BYTES = 1000
    settings.BULKSHEET_MAX_ROWS = 3

    big, _ = dry_run(org, b"Entity,Operation,Name\r\n" + b"Campaign,create,x\r\n" * 60)
    many, _ = dry_run(org, csv_bytes(*[new_campaign()] * 4))

    assert errors_of(big) == [
        (None, "", "The file is larger than the limit of 1,000 bytes. Split it.")
    ]
    assert errors_of(many) == [(5, "", "The file has more than 3 rows. Split it.")]
    assert big.content == ""


def test_a_semicolon_separated_file_gets_a_hint() -> None:
    upload, _ = dry_run(make_advertiser(), b"Entity;Operation;Name\r\nCampaign;create;x\r\n")

    assert errors_of(upload) == [
        (1, "Entity;Operation;Name", 'Unknown column "Entity;Operation;Name".'),
        (1, "", "Columns are separated by ; here: save as CSV with commas."),
    ]


def test_the_dry_run_reads_in_a_fixed_number_of_queries(django_assert_num_queries: Any) -> None:
    org = make_advertiser()
    for _ in range(3):
        campaign = make_campaign(org)
        for cpm in ("1.00", "2.00", "3.00"):
            make_line_item(campaign, cpm)
    sheet = read(decode(export_csv(org).encode()))
    assert len(sheet.rows) == 21

    # campaigns, line items, creatives, assignments: whatever the number of rows
    with django_assert_num_queries(4):
        plan = make_plan(sheet, org)

    assert plan.errors == []
    assert LineItem.objects.count() == 9


def test_the_upload_records_the_file_name_rows_and_uploader() -> None:
    org = make_advertiser()
    user = member(org)

    upload, _ = dry_run(org, csv_bytes(new_campaign(), new_campaign()), by=user)

    assert (upload.file_name, upload.rows_total, upload.created_by, upload.status) == (
        "sheet.csv",
        2,
        user,
        "validated",
    )
