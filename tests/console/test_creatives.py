"""The creative library in the console: each kind uploaded through the same checks as the
API and the admin, errors inline, review status and rejection reasons everywhere."""

from decimal import Decimal
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from campaigns import services
from campaigns.models import Role
from creatives import services as creative_services
from creatives.models import Creative, ReviewStatus
from tests.console.helpers import member
from tests.creatives import media
from tests.factories import (
    LANDING_URL,
    make_advertiser,
    make_campaign,
    make_image_creative,
    verify_shop_domain,
)

pytestmark = pytest.mark.django_db


def _file(data: bytes, name: str, content_type: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


def test_each_kind_is_uploaded_and_waits_for_review() -> None:
    org = make_advertiser()
    verify_shop_domain(org)
    client = member(org)
    common = {"advertiser": org.pk, "click_url": LANDING_URL, "secure": "on"}

    png = _file(media.image_bytes(300, 250), "b.png", "image/png")
    native_png = _file(media.image_bytes(1200, 627), "n.png", "image/png")
    bundle = _file(media.html5_zip(), "b.zip", "application/zip")
    uploads: dict[str, dict[str, Any]] = {
        "image": {"size": "300x250", "image": png},
        "html5": {"size": "300x250", "bundle": bundle},
        "video": {"media_files": [_file(media.mp4(), "v.mp4", "video/mp4")]},
        "audio": {"media_files": [_file(media.mp3(), "a.mp3", "audio/mpeg")]},
        "native": {
            "title": "Trail boots", "body": "Light and dry.", "call_to_action": "Shop",
            "sponsored_by": "Acme", "image": native_png,
        },
    }  # fmt: skip
    codes = {}
    for kind, fields in uploads.items():
        response = client.post(
            f"/creatives/new/?kind={kind}", {**common, "kind": kind, "name": f"My {kind}", **fields}
        )
        codes[kind] = response.status_code

    assert codes == dict.fromkeys(uploads, 302)
    made = {c.kind: c for c in Creative.objects.filter(advertiser=org)}
    assert set(made) == set(uploads)
    assert all(c.status == ReviewStatus.PENDING for c in made.values())
    assert made["html5"].bundle_root and made["video"].renditions.count() == 1


def test_validation_errors_are_shown_next_to_the_field() -> None:
    org = make_advertiser()
    client = member(org)

    response = client.post(
        "/creatives/new/?kind=image",
        {
            "advertiser": org.pk, "kind": "image", "name": "Wrong", "size": "300x250",
            "click_url": "http://elsewhere.example/", "secure": "on",
            "image": _file(media.image_bytes(728, 90), "b.png", "image/png"),
        },
    )  # fmt: skip
    page = response.content.decode()

    assert response.status_code == 200
    assert 'data-error-for="image"' in page and "728x90" in page
    assert 'data-error-for="click_url"' in page
    assert not Creative.objects.exists()


def test_a_rejection_is_shown_with_its_reason_wherever_the_creative_appears() -> None:
    org = make_advertiser()
    creative = make_image_creative(org)
    campaign = make_campaign(advertiser=org)
    li = services.create_line_item(campaign=campaign, name="L", bid=Decimal("1"), sizes=["300x250"])
    services.assign_creative(li, creative)
    creative_services.reject_creative(creative, reason="The landing page is not in English.")
    client = member(org, Role.ANALYST)

    pages = {
        "dashboard": client.get("/").content.decode(),
        "library": client.get("/creatives/").content.decode(),
        "creative": client.get(f"/creatives/{creative.pk}/").content.decode(),
        "line item": client.get(f"/line-items/{li.pk}/").content.decode(),
        "campaign": client.get(f"/campaigns/{campaign.pk}/").content.decode(),
    }

    reason = "The landing page is not in English."
    assert [name for name, page in pages.items() if "Rejected" not in page] == []
    assert all(reason in pages[p] for p in ("dashboard", "library", "creative", "line item"))
    assert "data-rejected-notice" in pages["dashboard"]
    assert "Not delivering: no approved creative" in pages["campaign"]


def test_an_edit_goes_back_to_review_and_archive_keeps_it() -> None:
    org = make_advertiser()
    creative = make_image_creative(org)
    client = member(org)

    client.post(
        f"/creatives/{creative.pk}/edit/",
        {
            "advertiser": org.pk, "kind": "image", "name": "Renamed", "size": "300x250",
            "click_url": LANDING_URL, "secure": "on", "alt_text": "Boots",
        },
    )  # fmt: skip
    creative.refresh_from_db()
    status_after_edit = creative.status
    client.post(f"/creatives/{creative.pk}/archive/")
    creative.refresh_from_db()

    assert creative.name == "Renamed" and status_after_edit == ReviewStatus.PENDING
    assert creative.archived_at is not None


def test_analysts_cannot_upload_and_outsiders_see_nothing() -> None:
    org, other = make_advertiser(), make_advertiser()
    creative = make_image_creative(org)
    analyst = member(org, Role.ANALYST)
    outsider = member(other, Role.ADMIN)

    library = analyst.get("/creatives/").content.decode()
    analyst_codes = [
        analyst.get("/creatives/new/").status_code,
        analyst.get(f"/creatives/{creative.pk}/edit/").status_code,
        analyst.post(f"/creatives/{creative.pk}/archive/").status_code,
    ]
    outsider_codes = [
        outsider.get(f"/creatives/{creative.pk}/").status_code,
        outsider.get(f"/creatives/{creative.pk}/edit/").status_code,
        outsider.get(f"/creatives/{creative.pk}/preview/").status_code,
        outsider.post(f"/creatives/{creative.pk}/archive/").status_code,
    ]

    assert "Upload image" not in library and creative.name in library
    assert analyst_codes == [403, 403, 403]
    assert outsider_codes == [404, 404, 404, 404]
    assert creative.name not in outsider.get("/creatives/").content.decode()
