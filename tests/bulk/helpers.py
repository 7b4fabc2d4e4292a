"""Building bulksheets for tests and running their dry run and apply."""

import csv
import io
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile

from campaigns.bulk import columns as cols
from campaigns.bulk.apply import apply_upload
from campaigns.bulk.services import queue_upload, validate_upload
from campaigns.bulk.steps import Plan
from campaigns.models import Advertiser, BulkUpload, Membership, Role

START = datetime(2027, 3, 1, 10, 0, tzinfo=UTC)  # the Start of new_campaign()


def csv_bytes(*rows: dict[str, str], header: list[str] | None = None, bom: bool = False) -> bytes:
    """A bulksheet with the given rows (missing cells empty), all columns unless `header`."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header or cols.HEADERS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return (("\ufeff" if bom else "") + out.getvalue()).encode()


def parse_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))


def member(advertiser: Advertiser, role: Role = Role.MANAGER, name: str = "") -> Any:
    user = get_user_model().objects.create_user(name or f"{role}-{advertiser.pk}", password="pw")
    Membership.objects.create(user=user, advertiser=advertiser, role=role)
    return user


def dry_run(advertiser: Advertiser, data: bytes, by: Any = None) -> tuple[BulkUpload, Plan | None]:
    return validate_upload(advertiser=advertiser, file=ContentFile(data, name="sheet.csv"), by=by)


def upload_and_apply(advertiser: Advertiser, data: bytes, by: Any = None) -> BulkUpload:
    """The dry run, then the apply the Celery task would run, in this thread."""
    upload, _ = dry_run(advertiser, data, by)
    assert upload.errors == []
    assert queue_upload(upload, by=by)
    apply_upload(upload)
    upload.refresh_from_db()
    return upload


def new_campaign(cells: dict[str, str] | None = None) -> dict[str, str]:
    """A valid campaign create row, with some cells replaced."""
    return {
        "Entity": "Campaign",
        "Operation": "create",
        "Name": "Boots",
        "Start": "2027-03-01T10:00",
        "Daily Budget": "50",
        **(cells or {}),
    }


def new_line_item(cells: dict[str, str] | None = None) -> dict[str, str]:
    """A valid line item create row (give it a Campaign Id), with some cells replaced."""
    return {
        "Entity": "Line Item",
        "Operation": "create",
        "Name": "Boots 300x250",
        "Bid": "4.50",
        "Sizes": "300x250",
        **(cells or {}),
    }
