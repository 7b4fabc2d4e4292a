"""The bulksheet API as an integrator uses it: upload, dry run, apply on the worker, result."""

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import OperationalError
from rest_framework.test import APIClient

from campaigns.models import Advertiser, BulkUpload, Campaign, LineItem, LineItemCreative, Role
from tests.bulk.helpers import csv_bytes, member, new_campaign, new_line_item, parse_csv
from tests.conftest import wait_for
from tests.factories import make_advertiser, make_campaign, make_creative

pytestmark = pytest.mark.urls("tests.bulk.urls")


def client_for(user: Any) -> APIClient:
    api = APIClient()
    api.force_login(user)
    return api


def upload(api: APIClient, organisation: Any, data: bytes, name: str = "boots.csv") -> Any:
    file = SimpleUploadedFile(name, data, content_type="text/csv")
    return api.post(
        "/api/v1/bulksheets/", {"organisation": organisation, "file": file}, format="multipart"
    )


def finished(api: APIClient, pk: int) -> dict[str, Any] | None:
    try:
        body: dict[str, Any] = api.get(f"/api/v1/bulksheets/{pk}/").json()
    except OperationalError:  # SQLite: the worker's transaction holds the table a moment
        return None
    return body if body["status"] in ("done", "failed", "error") else None


@pytest.mark.django_db(transaction=True)
def test_an_upload_is_dry_run_then_applied_by_the_worker(celery_worker: None) -> None:
    org = make_advertiser()
    api = client_for(member(org))
    creative = make_creative(org)
    data = csv_bytes(
        new_campaign({"Campaign Id": "tmp:boots"}),
        new_line_item({"Campaign Id": "tmp:boots", "Line Item Id": "tmp:mrec"}),
        {
            "Entity": "Creative Assignment",
            "Operation": "create",
            "Line Item Id": "tmp:mrec",
            "Creative Id": str(creative.pk),
        },
    )

    dry = upload(api, org.pk, data)

    assert dry.status_code == 201
    body = dry.json()
    assert (body["status"], body["rows_total"], body["errors"]) == ("validated", 3, [])
    assert [(c["row"], c["object"]) for c in body["changes"]] == [
        (2, "new campaign tmp:boots"),
        (3, "new line item tmp:mrec"),
        (4, f"creative {creative.pk} on line item tmp:mrec"),
    ]
    assert Campaign.objects.count() == 0

    applied = api.post(f"/api/v1/bulksheets/{body['id']}/apply/")

    assert (applied.status_code, applied.json()["status"]) == (202, "queued")
    final = wait_for(lambda: finished(api, body["id"]))
    assert (final["status"], final["rows_processed"], final["errors"]) == ("done", 3, [])
    campaign, line_item = Campaign.objects.get(), LineItem.objects.get()
    assert LineItemCreative.objects.get().line_item == line_item
    result = api.get(final["result_url"])
    assert result["Content-Type"] == "text/csv; charset=utf-8"
    rows = parse_csv(result.content.decode())
    assert [(r["Campaign Id"], r["Line Item Id"], r["Result"]) for r in rows] == [
        (str(campaign.pk), "", "created"),
        (str(campaign.pk), str(line_item.pk), "created"),
        ("", str(line_item.pk), "created"),
    ]


@pytest.mark.django_db
def test_a_failed_dry_run_lists_its_errors_and_cannot_be_applied() -> None:
    org = make_advertiser()
    api = client_for(member(org))

    dry = upload(api, org.pk, csv_bytes(new_campaign({"Daily Budget": "lots"})))
    not_utf8 = upload(
        api, org.pk, "Entity,Operation,Name\r\nCampaign,create,Été\r\n".encode("cp1252")
    )
    apply = api.post(f"/api/v1/bulksheets/{dry.json()['id']}/apply/")

    assert dry.status_code == 201
    assert (dry.json()["status"], dry.json()["errors"]) == (
        "failed",
        [
            {
                "row": 2,
                "column": "Daily Budget",
                "message": "'lots' is not a number like 12.50 (no currency sign or commas).",
            }
        ],
    )
    assert not_utf8.json()["errors"] == [
        {
            "row": None,
            "column": "",
            "message": "The file is not UTF-8 (byte 40 cannot be read): save it as CSV UTF-8.",
        }
    ]
    assert apply.status_code == 409
    assert BulkUpload.objects.get(pk=dry.json()["id"]).status == "failed"


@pytest.mark.django_db
def test_analysts_export_but_cannot_upload_and_outsiders_see_nothing() -> None:
    org = make_advertiser()
    make_campaign(org)
    analyst = client_for(member(org, Role.ANALYST))
    outsider = client_for(member(make_advertiser(), Role.ADMIN, name="outsider"))
    manager = client_for(member(org))
    done = upload(manager, org.pk, csv_bytes(new_campaign())).json()

    assert upload(analyst, org.pk, csv_bytes(new_campaign())).status_code == 403
    assert analyst.get(f"/api/v1/bulksheets/export/?organisation={org.pk}").status_code == 200
    assert upload(outsider, org.pk, csv_bytes(new_campaign())).status_code == 400
    assert outsider.get(f"/api/v1/bulksheets/export/?organisation={org.pk}").status_code == 400
    assert outsider.get(f"/api/v1/bulksheets/{done['id']}/").status_code == 404
    assert outsider.post(f"/api/v1/bulksheets/{done['id']}/apply/").status_code == 404
    assert upload(manager, 999999, csv_bytes(new_campaign())).status_code == 400
    assert manager.get("/api/v1/bulksheets/99999999999999999999/").status_code == 404
    assert APIClient().get(f"/api/v1/bulksheets/{done['id']}/").status_code in (401, 403)
    assert BulkUpload.objects.count() == 1


@pytest.mark.django_db
def test_bad_requests_are_explained_not_crashes(settings: Any) -> None:
    org = make_advertiser()
    api = client_for(member(org))
    settings.BULKSHEET_MAX_BYTES = 100

    no_file = api.post("/api/v1/bulksheets/", {"organisation": org.pk}, format="multipart")
    no_org = upload(api, "", csv_bytes(new_campaign()))
    too_big = upload(api, org.pk, csv_bytes(new_campaign()))
    no_result = api.get(f"/api/v1/bulksheets/{too_big.json()['id']}/result/")

    assert (no_file.status_code, no_org.status_code, no_result.status_code) == (400, 400, 404)
    assert too_big.json()["errors"] == [
        {
            "row": None,
            "column": "",
            "message": "The file is larger than the limit of 100 bytes. Split it.",
        }
    ]


@pytest.mark.django_db
def test_the_export_is_a_csv_download_of_the_organisation() -> None:
    org = Advertiser.objects.create(name="Acme")
    campaign = make_campaign(org)
    api = client_for(member(org))

    response = api.get(f"/api/v1/bulksheets/export/?organisation={org.pk}")

    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="bulksheet-{org.pk}.csv"'
    assert response.content.startswith("\ufeffEntity,Operation,Campaign Id".encode())
    assert [r["Campaign Id"] for r in parse_csv(response.content.decode())] == [str(campaign.pk)]
