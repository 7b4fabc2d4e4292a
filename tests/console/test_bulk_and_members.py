"""Bulksheets and members in the console, for advertisers (not only ad ops)."""

from decimal import Decimal
from typing import Any

import pytest
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile

from campaigns import services
from campaigns.bulk.apply import apply_upload
from campaigns.models import BulkUpload, Campaign, Membership, Role
from tests.bulk.helpers import csv_bytes, new_campaign, parse_csv
from tests.console.helpers import member
from tests.factories import make_advertiser, make_campaign

pytestmark = pytest.mark.django_db


def test_a_manager_dry_runs_applies_and_downloads_the_result() -> None:
    org = make_advertiser()
    client = member(org)
    sheet = csv_bytes(new_campaign({"Name": "From the sheet"}))

    dry = client.post(
        "/bulk/", {"organisation": org.pk, "file": SimpleUploadedFile("s.csv", sheet)}
    )
    upload = BulkUpload.objects.get()
    page = dry.content.decode()
    not_yet = Campaign.objects.filter(name="From the sheet").exists()
    applied = client.post(f"/bulk/{upload.pk}/apply/")
    apply_upload(BulkUpload.objects.get())  # what the Celery task runs
    status = client.get(f"/bulk/{upload.pk}/status.json").json()
    result = client.get(f"/bulk/{upload.pk}/result.csv")

    assert 'id="bulk-changes"' in page and "From the sheet" in page and not not_yet
    assert applied["Location"] == f"/bulk/{upload.pk}/"
    assert status["status"] == "done" and status["rows_processed"] == 1
    assert status["result_url"] == f"/bulk/{upload.pk}/result.csv"
    assert parse_csv(result.content.decode())[0]["Name"] == "From the sheet"
    assert Campaign.objects.filter(name="From the sheet", advertiser=org).exists()


def test_a_sheet_with_an_error_writes_nothing_and_cannot_be_applied() -> None:
    org = make_advertiser()
    client = member(org)
    sheet = csv_bytes(new_campaign({"Name": "Good"}), new_campaign({"Daily Budget": "-3"}))

    page = client.post(
        "/bulk/", {"organisation": org.pk, "file": SimpleUploadedFile("s.csv", sheet)}
    )
    upload = BulkUpload.objects.get()
    refused = client.post(f"/bulk/{upload.pk}/apply/", follow=True)

    assert "nothing was written" in page.content.decode()
    assert 'id="bulk-apply"' not in page.content.decode()
    assert "Only a validated upload can be applied" in refused.content.decode()
    assert not Campaign.objects.exists()


def test_analysts_export_but_do_not_upload_and_outsiders_get_nothing() -> None:
    campaign = make_campaign()
    org = campaign.advertiser
    services.create_line_item(campaign=campaign, name="Exported", bid=Decimal("1"), sizes=["1x1"])
    analyst = member(org, Role.ANALYST)
    outsider = member(make_advertiser(), Role.ADMIN)
    upload = BulkUpload.objects.create(advertiser=org, file_name="x.csv", status="validated")

    page = analyst.get("/bulk/").content.decode()
    export = analyst.get(f"/bulk/export/?organisation={org.pk}")
    sheet = SimpleUploadedFile("s.csv", csv_bytes(new_campaign()))

    assert 'id="bulk-upload"' not in page and 'id="bulk-export"' in page
    assert "Exported" in export.content.decode()
    assert analyst.post("/bulk/", {"organisation": org.pk, "file": sheet}).status_code == 403
    assert analyst.post(f"/bulk/{upload.pk}/apply/").status_code == 404
    assert outsider.get(f"/bulk/export/?organisation={org.pk}").status_code == 404
    assert outsider.get(f"/bulk/{upload.pk}/").status_code == 404
    assert outsider.get(f"/bulk/{upload.pk}/status.json").status_code == 404


def test_an_admin_invites_by_email_sets_roles_and_removes_members(
    django_capture_on_commit_callbacks: Any,
) -> None:
    org = make_advertiser()
    admin = member(org, Role.ADMIN)

    with django_capture_on_commit_callbacks(execute=True):
        admin.post("/members/", {"email": "Sam@Example.test", "role": "analyst"})
    sam = Membership.objects.get(user__email="Sam@example.test")
    again = admin.post("/members/", {"email": "sam@example.test", "role": "manager"})
    admin.post(f"/members/{sam.pk}/role/", {"role": "manager"})
    sam.refresh_from_db()
    role = sam.role
    admin.post(f"/members/{sam.pk}/remove/")

    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["Sam@example.test"]
    assert "Choose a password: http://testserver/accounts/reset/" in mail.outbox[0].body
    assert 'data-error-for="email">sam@example.test is already a member.' in again.content.decode()
    assert role == Role.MANAGER
    assert not Membership.objects.filter(pk=sam.pk).exists()


def test_the_last_admin_stays_and_only_admins_manage_members() -> None:
    org = make_advertiser()
    admin = member(org, Role.ADMIN)
    manager = member(org, Role.MANAGER)
    own = Membership.objects.get(advertiser=org, role=Role.ADMIN)

    demoted = admin.post(f"/members/{own.pk}/role/", {"role": "analyst"}, follow=True)
    page = manager.get("/members/").content.decode()

    assert "The organisation needs at least one admin." in demoted.content.decode()
    assert Membership.objects.get(pk=own.pk).role == Role.ADMIN
    assert 'id="invite"' not in page and "Remove" not in page
    assert (
        manager.post("/members/", {"email": "x@example.test", "role": "admin"}).status_code == 403
    )
    assert manager.post(f"/members/{own.pk}/remove/").status_code == 403
