"""Ad ops in the admin: the review queue with previews, bulk review, uploads, domains."""

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from creatives.models import Creative, ReviewStatus, VerifiedDomain
from tests.creatives import media
from tests.creatives.helpers import uploaded
from tests.factories import (
    LANDING_URL,
    make_advertiser,
    make_image_creative,
    make_native_creative,
    make_video_creative,
)

pytestmark = pytest.mark.django_db
QUEUE = "/admin/creatives/reviewqueueentry/"


@pytest.fixture
def staff() -> Client:
    user = get_user_model().objects.create_superuser("adops", "adops@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


def test_the_review_queue_lists_pending_creatives_with_their_checks_and_previews(
    staff: Client,
) -> None:
    org = make_advertiser()
    waiting = make_image_creative(org, approve=False)
    approved = make_image_creative(org)
    Creative.objects.filter(pk=waiting.pk).update(
        check_failures=[{"field": "click_url", "message": "Not verified."}]
    )

    page = staff.get(QUEUE).content.decode()

    assert page.count(f"/creatives/{waiting.pk}/preview/") == 1
    assert f"/creatives/{approved.pk}/preview/" not in page
    assert "1 failed" in page and 'title="Not verified."' in page
    assert f'<img src="http://127.0.0.1:8000/media/{waiting.image.name}"' in page


def test_the_change_page_embeds_the_preview_and_the_review_buttons(staff: Client) -> None:
    creative = make_video_creative(make_advertiser(), approve=False)

    page = staff.get(f"/admin/creatives/creative/{creative.pk}/change/").content.decode()

    assert f'<iframe src="/creatives/{creative.pk}/preview/"' in page
    assert f'formaction="/admin/creatives/creative/{creative.pk}/review/"' in page
    assert "spot-720p.mp4" in page  # the renditions
    assert "All passed." in page


def test_approve_and_reject_from_the_change_page(staff: Client) -> None:
    creative = make_image_creative(make_advertiser(), approve=False)
    url = f"/admin/creatives/creative/{creative.pk}/review/"

    approved = staff.post(url, {"approve": "1"})
    creative.refresh_from_db()
    assert (approved.status_code, creative.status) == (302, ReviewStatus.APPROVED)
    assert creative.reviewed_by is not None and creative.reviewed_by.username == "adops"

    staff.post(url, {"reject": "1", "reason": "Logo too small."})
    creative.refresh_from_db()
    assert (creative.status, creative.rejection_reason) == ("rejected", "Logo too small.")


def test_bulk_approve_skips_creatives_whose_checks_fail_and_says_why(staff: Client) -> None:
    org = make_advertiser("Acme Outdoor")
    good = make_image_creative(org, approve=False)
    bad = make_image_creative(make_advertiser("Other Co"), approve=False)
    VerifiedDomain.objects.filter(advertiser=bad.advertiser).delete()

    response = staff.post(
        QUEUE, {"action": "approve_selected", "_selected_action": [good.pk, bad.pk]}, follow=True
    )

    good.refresh_from_db()
    bad.refresh_from_db()
    assert (good.status, bad.status) == ("approved", "pending")
    messages = [str(m) for m in response.context["messages"]]
    assert messages == [
        f"{bad.name}: Cannot approve while automatic checks fail. click_url: The landing "
        "domain shop.example is not verified: Other Co has no verified domains yet; ask ad "
        "ops to verify it.",
        "Approved 1 creative(s).",
    ]


def test_bulk_reject_asks_for_the_reason_first(staff: Client) -> None:
    org = make_advertiser()
    creatives = [make_image_creative(org, approve=False) for _ in range(2)]
    selected = {"action": "reject_selected", "_selected_action": [c.pk for c in creatives]}

    form = staff.post(QUEUE, selected)
    done = staff.post(QUEUE, {**selected, "apply": "1", "reason": "Wrong season."})

    assert form.status_code == 200 and 'name="reason"' in form.content.decode()
    assert done.status_code == 302
    assert set(Creative.objects.values_list("status", "rejection_reason")) == {
        ("rejected", "Wrong season.")
    }


def test_a_creative_uploaded_in_the_admin_goes_through_the_same_checks(staff: Client) -> None:
    org = make_advertiser()
    VerifiedDomain.objects.create(advertiser=org, domain="shop.example")
    form = {
        "advertiser": org.pk, "name": "Admin upload", "kind": "image", "click_url": LANDING_URL,
        "categories": "[]", "secure": "on", "size": "300x250", "entry_file": "index.html",
        "duration": "0",
    }  # fmt: skip

    wrong = staff.post(
        "/admin/creatives/creative/add/",
        {**form, "image": uploaded(media.image_bytes(320, 50), "banner.png")},
    )
    right = staff.post(
        "/admin/creatives/creative/add/",
        {**form, "image": uploaded(media.image_bytes(300, 250), "banner.png")},
    )

    assert "banner.png is 320x50 pixels; the declared size is 300x250." in wrong.content.decode()
    assert right.status_code == 302, right.content.decode()[-3000:]
    creative = Creative.objects.get()
    assert (creative.status, creative.size, creative.check_failures) == ("pending", "300x250", [])
    assert creative.image.name.startswith("creatives/")  # type: ignore[union-attr]


def test_a_video_uploaded_in_the_admin_gets_its_renditions(staff: Client) -> None:
    org = make_advertiser()
    VerifiedDomain.objects.create(advertiser=org, domain="shop.example")

    response = staff.post(
        "/admin/creatives/creative/add/",
        {
            "advertiser": org.pk, "name": "Spot", "kind": "video", "click_url": LANDING_URL,
            "categories": "[]", "secure": "on", "entry_file": "index.html", "duration": "0",
            "media_files": [uploaded(media.mp4(640, 360), "a.mp4"),
                            uploaded(media.webm(640, 360), "a.webm")],
        },
    )  # fmt: skip

    assert response.status_code == 302
    assert Creative.objects.get().renditions.count() == 2


def test_verifying_a_domain_in_the_admin_clears_the_waiting_creatives_checks(
    staff: Client,
) -> None:
    creative = make_native_creative(make_advertiser(), approve=False)
    VerifiedDomain.objects.all().delete()
    creative.check_failures = [{"field": "click_url", "message": "Not verified."}]
    creative.save()

    response = staff.post(
        "/admin/creatives/verifieddomain/add/",
        {"advertiser": creative.advertiser_id, "domain": "Shop.Example.", "note": "DNS TXT"},
    )

    assert response.status_code == 302
    domain = VerifiedDomain.objects.get()
    assert (domain.domain, domain.verified_by.username) == ("shop.example", "adops")  # type: ignore[union-attr]
    creative.refresh_from_db()
    assert creative.check_failures == []


def test_the_creative_list_shows_every_kind(staff: Client, settings: Any) -> None:
    org = make_advertiser()
    make_image_creative(org)
    make_video_creative(org)

    page = staff.get("/admin/creatives/creative/?status=approved").content.decode()

    assert page.count("/preview/") == 2


def test_the_add_page_and_a_queued_creatives_page_render(staff: Client) -> None:
    creative = make_image_creative(make_advertiser(), approve=False)

    add = staff.get("/admin/creatives/creative/add/").content.decode()
    queued = staff.get(f"{QUEUE}{creative.pk}/change/").content.decode()
    approved = staff.post(f"{QUEUE}{creative.pk}/review/", {"approve": "1"})

    assert 'name="media_files"' in add and 'name="html_tag"' in add
    assert f'formaction="{QUEUE}{creative.pk}/review/"' in queued
    assert approved["Location"] == QUEUE  # on to the next creative in the queue


def test_rejecting_from_the_queue_says_how_many_were_rejected(staff: Client) -> None:
    org = make_advertiser()
    creatives = [make_image_creative(org, approve=False) for _ in range(2)]
    selected = {"action": "reject_selected", "_selected_action": [c.pk for c in creatives]}

    done = staff.post(QUEUE, {**selected, "apply": "1", "reason": "Wrong season."}, follow=True)

    assert "Rejected 2 creative(s)." in done.content.decode()


def test_the_admin_archives_creatives_instead_of_deleting_them(staff: Client) -> None:
    creative = make_image_creative(make_advertiser())
    change = f"/admin/creatives/creative/{creative.pk}/change/"

    page = staff.get(change).content.decode()
    listing = staff.get("/admin/creatives/creative/").content.decode()
    delete = staff.post(f"/admin/creatives/creative/{creative.pk}/delete/", {"post": "yes"})
    bulk = staff.post(
        "/admin/creatives/creative/",
        {"action": "delete_selected", "_selected_action": [creative.pk], "post": "yes"},
    )
    staff.post(
        "/admin/creatives/creative/",
        {"action": "archive_selected", "_selected_action": [creative.pk]},
    )

    creative.refresh_from_db()
    assert 'class="deletelink"' not in page
    assert 'value="delete_selected"' not in listing and 'value="archive_selected"' in listing
    assert delete.status_code == 403 and bulk.status_code == 302  # "no action selected"
    assert creative.archived_at is not None
