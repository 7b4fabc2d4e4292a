"""The creative API as integrators use it: multipart uploads of every kind, errors, review."""

from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from campaigns.models import Advertiser, Role
from creatives.models import Creative
from tests.creatives import media
from tests.creatives.helpers import field_errors, member_api, staff_api, uploaded
from tests.factories import (
    LANDING_URL,
    make_advertiser,
    make_image_creative,
    make_video_creative,
    verify_shop_domain,
)

pytestmark = pytest.mark.django_db
URL = "/api/v1/creatives/"


@pytest.fixture
def org() -> Advertiser:
    advertiser = make_advertiser("Acme Outdoor")
    verify_shop_domain(advertiser)
    return advertiser


def body(org: Advertiser, **fields: Any) -> dict[str, Any]:
    return {"organisation": org.pk, "name": "Spring boots", "click_url": LANDING_URL, **fields}


def test_an_image_is_uploaded_as_multipart_and_waits_for_review(org: Advertiser) -> None:
    api = member_api(org)

    response = api.post(
        URL,
        body(org, kind="image", size="300x250", alt_text="Boots", categories='["IAB8"]',
             image=uploaded(media.image_bytes(300, 250), "boots.png", "image/png")),
        format="multipart",
    )  # fmt: skip

    assert response.status_code == 201, response.content
    data = response.json()
    creative = Creative.objects.get()
    assert data["id"] == creative.pk
    assert (data["kind"], data["status"], data["size"], data["check_failures"]) == (
        "image", "pending", "300x250", [],
    )  # fmt: skip
    assert (data["adomain"], data["categories"], data["secure"]) == ("shop.example", ["IAB8"], True)
    assert data["image_url"] == f"http://127.0.0.1:8000/media/{creative.image.name}"
    assert data["preview_url"] == f"/creatives/{creative.pk}/preview/"
    assert response["ETag"] == '"v1"'


def test_an_html5_zip_and_a_third_party_tag_are_uploaded(org: Advertiser) -> None:
    api = member_api(org)

    bundle = api.post(
        URL,
        body(org, kind="html5", size="300x600",
             bundle=uploaded(media.html5_zip(), "banner.zip", "application/zip")),
        format="multipart",
    )  # fmt: skip
    tag = api.post(
        URL,
        body(org, kind="html5", size="728x90", html_tag='<script src="https://a.example/t.js"></script>'),
        format="json",
    )  # fmt: skip

    assert (bundle.status_code, tag.status_code) == (201, 201)
    root = Creative.objects.get(pk=bundle.json()["id"]).bundle_root
    assert bundle.json()["entry_url"] == f"http://127.0.0.1:8000/media/{root}/index.html"
    assert (tag.json()["size"], tag.json()["entry_url"]) == ("728x90", None)


def test_a_video_is_uploaded_with_several_renditions(org: Advertiser) -> None:
    api = member_api(org)

    response = api.post(
        URL,
        body(org, kind="video", media=[
            uploaded(media.mp4(640, 360, 30), "spot-360p.mp4", "video/mp4"),
            uploaded(media.webm(1280, 720, 30), "spot-720p.webm", "video/webm"),
        ]),
        format="multipart",
    )  # fmt: skip

    assert response.status_code == 201, response.content
    data = response.json()
    assert (data["size"], data["duration"]) == ("1280x720", "30.000")
    assert [
        (r["original_name"], r["mime_type"], r["width"], r["height"], r["duration"])
        for r in data["renditions"]
    ] == [
        ("spot-720p.webm", "video/webm", 1280, 720, "30.000"),
        ("spot-360p.mp4", "video/mp4", 640, 360, "30.000"),
    ]
    assert all(
        r["url"].startswith("http://127.0.0.1:8000/media/creatives/") for r in data["renditions"]
    )


def test_a_vast_tag_audio_and_native_are_uploaded(org: Advertiser) -> None:
    api = member_api(org)

    wrapper = api.post(
        URL,
        body(org, kind="video", vast_tag_url="https://adserver.example/vast?id=1", duration="15"),
        format="json",
    )  # fmt: skip
    audio = api.post(
        URL,
        body(org, kind="audio", media=[uploaded(media.mp3(10), "jingle.mp3", "audio/mpeg")]),
        format="multipart",
    )  # fmt: skip
    native = api.post(
        URL,
        body(org, kind="native", title="Boots for every trail", body="Light and waterproof.",
             call_to_action="Shop now", sponsored_by="Acme Outdoor",
             image=uploaded(media.image_bytes(1200, 627, "JPEG"), "hero.jpg", "image/jpeg")),
        format="multipart",
    )  # fmt: skip

    assert (wrapper.status_code, audio.status_code, native.status_code) == (201, 201, 201)
    assert (wrapper.json()["size"], wrapper.json()["duration"]) == ("0x0", "15.000")
    assert (audio.json()["size"], audio.json()["renditions"][0]["mime_type"]) == (
        "0x0",
        "audio/mpeg",
    )
    assert native.json()["size"] == "1200x627"


def test_upload_errors_name_the_field_and_the_problem(org: Advertiser) -> None:
    api = member_api(org)

    wrong_size = api.post(
        URL,
        body(org, kind="image", size="300x250", click_url="http://shop.example/",
             image=uploaded(media.image_bytes(320, 50), "banner.png")),
        format="multipart",
    )  # fmt: skip
    wrong_type = api.post(
        URL,
        body(org, kind="video", media=[uploaded(media.image_bytes(10, 10), "clip.mp4")]),
        format="multipart",
    )  # fmt: skip
    no_entry = api.post(
        URL,
        body(org, kind="html5", size="300x250",
             bundle=uploaded(media.zip_bytes({"ad.html": "<html></html>"}), "b.zip")),
        format="multipart",
    )  # fmt: skip
    bad_size = api.post(
        URL, body(org, kind="html5", size="big", html_tag="<b>x</b>"), format="json"
    )

    assert field_errors(wrong_size) == [
        ("click_url", "The landing URL must use https; http://shop.example/ does not."),
        ("image", "banner.png is 320x50 pixels; the declared size is 300x250."),
    ]
    assert field_errors(wrong_type) == [
        ("media", "clip.mp4 is a PNG image; video renditions must be MP4 or WebM.")
    ]
    assert field_errors(no_entry) == [
        ("bundle", "b.zip has no entry file index.html; set the entry file to the page that "
                   "starts the ad (HTML files in the zip: ad.html)."),
    ]  # fmt: skip
    assert field_errors(bad_size) == [("size", "Sizes look like 300x250; not 'big'.")]
    assert wrong_size.json()["error"]["code"] == "invalid"
    assert Creative.objects.count() == 0


def test_files_must_be_files(org: Advertiser) -> None:
    response = member_api(org).post(
        URL, body(org, kind="video", media=["https://x.example/a.mp4"]), format="json"
    )

    assert field_errors(response) == [
        ("media.0", "The submitted data was not a file. Check the encoding type on the form.")
    ]


def test_an_unverified_domain_is_accepted_for_review_with_the_failure_shown() -> None:
    org = make_advertiser("Acme Outdoor")

    response = member_api(org).post(
        URL,
        body(org, kind="image", image=uploaded(media.image_bytes(300, 250), "b.png")),
        format="multipart",
    )

    assert response.status_code == 201
    assert response.json()["check_failures"] == [
        {
            "field": "click_url",
            "message": "The landing domain shop.example is not verified: Acme Outdoor has no "
            "verified domains yet; ask ad ops to verify it.",
        }
    ]


def test_lists_are_scoped_paginated_and_filtered(org: Advertiser) -> None:
    make_image_creative(org)
    make_image_creative(org, approve=False)
    make_video_creative(org, approve=False)
    make_image_creative(make_advertiser())  # another organisation's
    api = member_api(org, Role.ANALYST)

    everything = api.get(URL).json()
    pending_images = api.get(URL, {"kind": "image", "status": "pending"}).json()

    assert everything["count"] == 3 and {"next", "previous"} <= set(everything)
    assert [c["kind"] for c in pending_images["results"]] == ["image"]
    assert staff_api().get(URL).json()["count"] == 4


def test_listing_runs_a_fixed_number_of_queries(
    org: Advertiser, django_assert_num_queries: Any
) -> None:
    api = member_api(org)
    api.get(URL)  # authentication caches warm up
    for _ in range(3):
        make_video_creative(org)

    with django_assert_num_queries(4):  # token and user, count, creatives, renditions
        assert api.get(URL).json()["count"] == 3


def test_another_organisations_creative_is_404(org: Advertiser) -> None:
    creative = make_image_creative(org)
    outsider = member_api(make_advertiser(), Role.ADMIN, name="outsider")

    assert outsider.get(f"{URL}{creative.pk}/").status_code == 404
    assert outsider.patch(f"{URL}{creative.pk}/", {"name": "x"}, format="json").status_code == 404
    assert outsider.post(f"{URL}{creative.pk}/archive/").status_code == 404
    sneaky = outsider.post(URL, body(org, kind="html5", size="1x1", html_tag="x"), format="json")
    assert field_errors(sneaky)[0][0] == "organisation"


def test_an_edit_through_the_api_sends_the_creative_back_to_review(org: Advertiser) -> None:
    creative = make_image_creative(org)
    api = member_api(org)

    edited = api.patch(
        f"{URL}{creative.pk}/",
        {"image": uploaded(media.image_bytes(300, 250, colour="#000"), "new.png")},
        format="multipart",
        HTTP_IF_MATCH=f'"v{creative.version}"',
    )
    stale = api.patch(
        f"{URL}{creative.pk}/", {"alt_text": "x"}, format="json",
        HTTP_IF_MATCH=f'"v{creative.version}"',
    )  # fmt: skip

    assert edited.status_code == 200, edited.content
    assert (edited.json()["status"], edited.json()["version"]) == ("pending", creative.version + 1)
    assert stale.status_code == 412
    assert stale.json()["error"]["code"] == "precondition_failed"


def test_new_media_replace_the_renditions(org: Advertiser) -> None:
    creative = make_video_creative(org)

    response = member_api(org).patch(
        f"{URL}{creative.pk}/",
        {"media": [uploaded(media.mp4(1920, 1080, 15), "1080p.mp4")]},
        format="multipart",
    )

    assert [r["original_name"] for r in response.json()["renditions"]] == ["1080p.mp4"]
    assert response.json()["status"] == "pending"


def test_staff_approve_and_reject_members_cannot(org: Advertiser) -> None:
    creative = make_image_creative(org, approve=False)
    member, staff = member_api(org, Role.ADMIN), staff_api()

    refused = member.post(f"{URL}{creative.pk}/approve/")
    approved = staff.post(f"{URL}{creative.pk}/approve/")
    no_reason = staff.post(f"{URL}{creative.pk}/reject/", {}, format="json")
    rejected = staff.post(
        f"{URL}{creative.pk}/reject/", {"reason": "Misleading claim."}, format="json"
    )

    assert refused.status_code == 403
    assert refused.json()["error"]["message"] == "Only ad-ops staff review creatives."
    assert (approved.status_code, approved.json()["status"]) == (200, "approved")
    assert approved.json()["reviewed_by"] == "reviewer"
    assert field_errors(no_reason) == [("reason", "This field is required.")]
    assert (rejected.json()["status"], rejected.json()["rejection_reason"]) == (
        "rejected", "Misleading claim.",
    )  # fmt: skip


def test_approval_is_refused_while_a_check_fails() -> None:
    org = make_advertiser("Acme Outdoor")
    created = (
        member_api(org)
        .post(
            URL,
            body(org, kind="image", image=uploaded(media.image_bytes(300, 250), "b.png")),
            format="multipart",
        )
        .json()
    )

    response = staff_api().post(f"{URL}{created['id']}/approve/")

    assert field_errors(response) == [
        ("status", "Cannot approve while automatic checks fail. click_url: The landing domain "
                   "shop.example is not verified: Acme Outdoor has no verified domains yet; "
                   "ask ad ops to verify it."),
    ]  # fmt: skip


def test_analysts_read_managers_write_nobody_deletes(org: Advertiser) -> None:
    creative = make_image_creative(org)
    analyst = member_api(org, Role.ANALYST)

    assert analyst.get(f"{URL}{creative.pk}/").status_code == 200
    assert analyst.patch(f"{URL}{creative.pk}/", {"name": "x"}, format="json").status_code == 403
    upload = analyst.post(URL, body(org, kind="html5", size="1x1", html_tag="x"), format="json")
    assert field_errors(upload)[0][0] == "organisation"
    deleted = member_api(org, Role.ADMIN, name="admin").delete(f"{URL}{creative.pk}/")
    assert deleted.status_code == 405
    archived = member_api(org, name="manager").post(f"{URL}{creative.pk}/archive/")
    assert archived.json()["archived_at"] is not None


def test_the_schema_builds_without_warnings(tmp_path: Path) -> None:
    out = tmp_path / "schema.yaml"

    call_command("spectacular", "--fail-on-warn", "--file", str(out))

    text = out.read_text()
    assert "/api/v1/creatives/{id}/approve/:" in text
    assert "multipart/form-data" in text


def test_an_idempotency_key_is_honoured_for_small_uploads_and_refused_for_big_ones(
    org: Advertiser, settings: Any
) -> None:
    api = member_api(org)
    upload = body(org, kind="image", image=uploaded(media.image_bytes(300, 250), "b.png"))

    first = api.post(URL, upload, format="multipart", HTTP_IDEMPOTENCY_KEY="k1")
    upload["image"].seek(0)
    again = api.post(URL, upload, format="multipart", HTTP_IDEMPOTENCY_KEY="k1")
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    video = body(org, kind="video", media=[uploaded(media.mp4(), "a.mp4")])
    big = api.post(URL, video, format="multipart", HTTP_IDEMPOTENCY_KEY="k2")

    assert (first.status_code, again.status_code, again["Idempotent-Replayed"]) == (
        201,
        201,
        "true",
    )
    assert Creative.objects.count() == 1
    assert big.status_code == 400
    assert big.json()["error"]["message"] == (
        "An Idempotency-Key is honoured for uploads up to 1.0 KB; send this one without it."
    )
