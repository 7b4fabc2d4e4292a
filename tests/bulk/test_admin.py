"""The bulksheet pages in the admin, as ad ops staff use them."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from campaigns.bulk.apply import apply_upload
from campaigns.demo import load_demo
from campaigns.demo_accounts import DEMO_STAFF, DEMO_USER
from campaigns.models import Advertiser, BulkUpload, LineItem
from tests.bulk.helpers import csv_bytes, new_campaign, parse_csv

pytestmark = pytest.mark.django_db

PAGE = "/admin/campaigns/campaign/bulksheets/"


def staff() -> Client:
    client = Client()
    assert client.login(username=DEMO_STAFF[0], password=DEMO_STAFF[1])
    return client


def test_staff_reach_the_upload_page_from_the_campaign_list() -> None:
    load_demo()
    client = staff()

    changelist = client.get("/admin/campaigns/campaign/").content.decode()
    page = client.get(PAGE)

    assert f'<a href="{PAGE}">Bulksheets</a>' in changelist
    assert page.status_code == 200
    html = page.content.decode()
    assert '<form method="post" enctype="multipart/form-data" id="bulk-upload">' in html
    assert f'<option value="{Advertiser.objects.get().pk}">Acme Outdoor</option>' in html
    assert 'id="bulk-export"' in html


def test_a_dry_run_shows_the_changes_and_applying_shows_progress_then_the_result() -> None:
    load_demo()
    org = Advertiser.objects.get()
    client = staff()
    export = client.get(f"{PAGE}export/?organisation={org.pk}")
    edited = export.content.decode().replace("4.50", "4.80")

    dry = client.post(
        PAGE, {"organisation": org.pk, "file": SimpleUploadedFile("acme.csv", edited.encode())}
    )

    html = dry.content.decode()
    upload = BulkUpload.objects.get()
    line_item = LineItem.objects.get(name="Boots, run of network")
    assert "<li>Line Item: 1 update, 2 unchanged</li>" in html
    assert f"Line item {line_item.pk} &quot;Boots, run of network&quot;" in html
    assert '<td class="bulk-old">4.50</td>' in html and "<td>4.80</td>" in html
    assert f'action="{PAGE}{upload.pk}/apply/"' in html

    applied = client.post(f"{PAGE}{upload.pk}/apply/")
    queued = client.get(applied["Location"]).content.decode()
    status = client.get(f"{PAGE}{upload.pk}/status.json").json()

    assert applied["Location"] == f"{PAGE}{upload.pk}/"
    assert 'data-in-progress="true"' in queued
    assert re.search(r'<progress class="bulk-progress" max="8" value="0">', queued)
    assert status == {
        "status": "queued",
        "status_label": "Queued",
        "in_progress": True,
        "rows_total": 8,
        "rows_processed": 0,
        "result_url": None,
    }

    apply_upload(upload)  # what the worker does
    done = client.get(f"{PAGE}{upload.pk}/").content.decode()
    result = client.get(f"{PAGE}{upload.pk}/result.csv")

    assert 'data-in-progress="false"' in done
    assert '<progress class="bulk-progress" max="8" value="8">' in done
    assert [r["Result"] for r in parse_csv(result.content.decode())].count("updated") == 1
    line_item.refresh_from_db()
    assert str(line_item.bid) == "4.8000"


def test_a_failed_dry_run_lists_errors_and_offers_no_apply() -> None:
    load_demo()
    data = csv_bytes(new_campaign({"Start": "soon"}))

    dry = staff().post(
        PAGE,
        {"organisation": Advertiser.objects.get().pk, "file": SimpleUploadedFile("bad.csv", data)},
    )

    html = dry.content.decode()
    assert "1 error; nothing was written" in html
    assert "<td>2</td><td>Start</td>" in html
    assert 'id="bulk-apply"' not in html


def test_only_staff_see_the_bulksheet_pages() -> None:
    load_demo()
    member = Client()
    assert member.login(username=DEMO_USER[0], password=DEMO_USER[1])
    get_user_model().objects.create_user("clerk", password="pw", is_staff=True)
    clerk = Client()
    assert clerk.login(username="clerk", password="pw")

    assert member.get(PAGE).status_code == 302  # to the admin login
    assert clerk.get(PAGE).status_code == 403  # staff without the change-campaign permission
