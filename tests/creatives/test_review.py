"""The review workflow: automatic checks on upload, approve/reject, edits back to review."""

from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.utils import timezone

from campaigns.models import AuditEntry
from creatives import services
from creatives.models import Creative, ReviewStatus
from tests.creatives import media
from tests.factories import (
    LANDING_URL,
    make_advertiser,
    make_creative,
    make_html5_creative,
    make_image_creative,
    make_video_creative,
    png,
)

pytestmark = pytest.mark.django_db


def reviewer() -> Any:
    return get_user_model().objects.get_or_create(username="adops", is_staff=True)[0]


def test_an_upload_passes_its_automatic_checks_and_waits_for_a_reviewer() -> None:
    before = timezone.now()

    creative = make_image_creative(make_advertiser(), approve=False)

    assert creative.status == ReviewStatus.PENDING
    assert creative.check_failures == []
    assert creative.checked_at is not None and creative.checked_at >= before
    assert creative.adomain == "shop.example"
    assert list(Creative.objects.servable()) == []


def test_an_unverified_landing_domain_is_marked_and_blocks_approval_until_verified() -> None:
    org = make_advertiser("Acme Outdoor")
    creative = services.create_creative(
        advertiser=org, kind="image", name="Boots", click_url="https://www.acme.example/boots",
        image=png(300, 250),
    )  # fmt: skip
    failure = (
        "The landing domain www.acme.example is not verified: Acme Outdoor has no verified "
        "domains yet; ask ad ops to verify it."
    )
    assert creative.check_failures == [{"field": "click_url", "message": failure}]

    with pytest.raises(ValidationError) as refused:
        services.approve_creative(creative, by=reviewer())

    assert refused.value.message_dict == {
        "status": [f"Cannot approve while automatic checks fail. click_url: {failure}"]
    }
    services.verify_domain(org, "acme.example", by=reviewer(), note="DNS TXT record")
    creative.refresh_from_db()
    assert (creative.check_failures, creative.adomain) == ([], "acme.example")
    assert services.approve_creative(creative, by=reviewer()).status == ReviewStatus.APPROVED


def test_another_domain_of_the_advertiser_is_named_in_the_failure() -> None:
    org = make_advertiser("Acme Outdoor")
    services.verify_domain(org, "acme.example")
    services.verify_domain(org, "acme-shop.example")

    creative = services.create_creative(
        advertiser=org, kind="image", name="Boots", click_url="https://evil.example/acme.example",
        image=png(300, 250),
    )  # fmt: skip

    assert creative.check_failures == [
        {
            "field": "click_url",
            "message": "The landing domain evil.example is not among Acme Outdoor's verified "
            "domains (acme-shop.example, acme.example); ask ad ops to verify it.",
        }
    ]
    assert creative.adomain == "evil.example"


def test_verified_domains_are_names_not_urls() -> None:
    with pytest.raises(ValidationError) as refused:
        services.verify_domain(make_advertiser(), "https://acme.example/")

    assert refused.value.message_dict == {
        "domain": ["'https://acme.example/' is not a domain name like acme.com."]
    }


def test_approval_and_rejection_record_who_reviewed_when() -> None:
    creative = make_image_creative(make_advertiser(), approve=False)
    staff = reviewer()

    services.approve_creative(creative, by=staff)
    creative.refresh_from_db()
    approved_at = creative.reviewed_at
    services.reject_creative(creative, by=staff, reason="The offer ended; the ad says 20% off.")
    creative.refresh_from_db()

    assert (creative.status, creative.rejection_reason, creative.reviewed_by) == (
        ReviewStatus.REJECTED, "The offer ended; the ad says 20% off.", staff,
    )  # fmt: skip
    assert creative.reviewed_at is not None and approved_at is not None
    assert creative.reviewed_at >= approved_at
    history = [
        (e.action, e.actor, e.changes)
        for e in AuditEntry.objects.for_object(creative).order_by("id")
    ]
    assert history[1:] == [
        ("status", staff, {"status": ["pending", "approved"]}),
        (
            "status",
            staff,
            {
                "status": ["approved", "rejected"],
                "rejection_reason": ["", "The offer ended; the ad says 20% off."],
            },
        ),
    ]
    assert history[0][0] == "create"


def test_a_rejection_needs_a_reason() -> None:
    creative = make_image_creative(make_advertiser(), approve=False)

    with pytest.raises(ValidationError) as refused:
        services.reject_creative(creative, by=reviewer(), reason="  ")

    assert refused.value.message_dict == {
        "reason": ["Say why the creative is rejected; the advertiser sees it."]
    }


def test_editing_an_approved_creative_sends_it_back_to_review() -> None:
    creative = make_image_creative(make_advertiser())
    version = creative.version

    edited = services.update_creative(creative, by=reviewer(), alt_text="New boots")

    assert (edited.status, edited.reviewed_by, edited.reviewed_at) == ("pending", None, None)
    assert edited.version == version + 1
    assert list(Creative.objects.servable()) == []
    entry = AuditEntry.objects.for_object(creative).first()
    assert entry is not None
    assert entry.changes == {"alt_text": ["Boots", "New boots"], "status": ["approved", "pending"]}


def test_saving_without_a_change_keeps_the_approval() -> None:
    creative = make_image_creative(make_advertiser())

    same = services.update_creative(creative, alt_text=creative.alt_text)

    assert same.status == ReviewStatus.APPROVED


def test_a_rejected_creative_fixed_by_the_advertiser_is_reviewed_again() -> None:
    creative = make_image_creative(make_advertiser(), approve=False)
    services.reject_creative(creative, by=reviewer(), reason="Blurry.")

    fixed = services.update_creative(creative, image=png(300, 250))

    assert (fixed.status, fixed.rejection_reason) == ("pending", "")


def test_new_renditions_replace_the_old_and_send_the_video_back_to_review() -> None:
    creative = make_video_creative(make_advertiser())

    edited = services.update_creative(
        creative, media=[media.upload(media.mp4(1920, 1080, 15), "1080p.mp4")]
    )

    assert [(r.width, r.height) for r in edited.renditions.all()] == [(1920, 1080)]
    assert (edited.status, edited.size) == ("pending", "1920x1080")


def test_a_vast_tag_replaces_uploaded_renditions() -> None:
    creative = make_video_creative(make_advertiser())

    edited = services.update_creative(
        creative, vast_tag_url="https://adserver.example/vast", duration=Decimal(30)
    )

    assert edited.renditions.count() == 0
    assert (edited.is_wrapper, edited.size, edited.duration) == (True, "0x0", Decimal(30))


def test_a_tag_replaces_a_bundle() -> None:
    creative = make_html5_creative(make_advertiser())

    edited = services.update_creative(creative, html_tag="<div>ad</div>")

    assert (edited.html_tag, edited.bundle.name, edited.bundle_root) == ("<div>ad</div>", "", "")


def test_the_kind_and_an_archived_creative_cannot_change() -> None:
    creative = make_image_creative(make_advertiser())

    with pytest.raises(ValidationError) as kind:
        services.update_creative(creative, kind="video")
    services.archive_creative(creative, by=reviewer())
    with pytest.raises(ValidationError) as archived:
        services.update_creative(creative, alt_text="x")
    with pytest.raises(ValidationError) as review:
        services.approve_creative(creative)

    assert kind.value.message_dict == {
        "kind": ["A creative's kind cannot change; make a new creative."]
    }
    assert archived.value.messages == ["An archived creative cannot be changed."]
    assert review.value.message_dict == {"status": ["An archived creative is not reviewed."]}


def test_servable_means_approved_and_not_archived() -> None:
    org = make_advertiser()
    approved = make_image_creative(org)
    make_image_creative(org, approve=False)
    rejected = make_image_creative(org, approve=False)
    services.reject_creative(rejected, reason="No.")
    archived = make_image_creative(org)
    services.archive_creative(archived)

    assert list(Creative.objects.servable()) == [approved]


def test_the_review_queue_is_pending_creatives_oldest_first() -> None:
    org = make_advertiser()
    first = make_image_creative(org, approve=False)
    second = make_image_creative(org, approve=False)
    make_image_creative(org)
    services.update_creative(first, alt_text="edited later")

    assert list(Creative.objects.awaiting_review()) == [second, first]


def test_creatives_made_before_the_review_existed_and_the_legacy_factory_serve() -> None:
    creative = make_creative(make_advertiser())

    assert creative.status == ReviewStatus.APPROVED
    assert list(Creative.objects.servable()) == [creative]
    assert creative.click_url == LANDING_URL
