"""The preview page: each creative exactly as served, for staff and the advertiser's members."""

import html
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from campaigns.models import Advertiser, Membership, Role
from creatives import services
from tests.factories import (
    make_advertiser,
    make_audio_creative,
    make_html5_creative,
    make_image_creative,
    make_native_creative,
    make_vast_wrapper_creative,
    make_video_creative,
)

pytestmark = pytest.mark.django_db


def client_for(advertiser: Advertiser | None = None, staff: bool = False) -> Client:
    user = get_user_model().objects.create_user(
        f"user-{get_user_model().objects.count()}", is_staff=staff
    )
    if advertiser is not None:
        Membership.objects.create(user=user, advertiser=advertiser, role=Role.ANALYST)
    client = Client()
    client.force_login(user)
    return client


def page(client: Client, creative: Any) -> str:
    response = client.get(f"/creatives/{creative.pk}/preview/")
    assert response.status_code == 200
    assert response["X-Frame-Options"] == "SAMEORIGIN"  # the review page embeds it
    return html.unescape(response.content.decode())


def test_staff_and_the_advertisers_members_see_the_preview_others_get_404() -> None:
    org = make_advertiser()
    creative = make_image_creative(org, approve=False)
    url = f"/creatives/{creative.pk}/preview/"

    assert client_for(org).get(url).status_code == 200
    assert client_for(staff=True).get(url).status_code == 200
    assert client_for(make_advertiser()).get(url).status_code == 404
    assert client_for().get(url).status_code == 404
    assert Client().get(url)["Location"] == f"/accounts/login/?next={url}"


def test_an_image_is_shown_as_served_with_preview_urls() -> None:
    org = make_advertiser()
    creative = make_image_creative(org, "300x250")

    text = page(client_for(org), creative)

    assert 'width="300" height="250"' in text
    assert 'sandbox="allow-scripts allow-popups allow-popups-to-escape-sandbox"' in text
    assert f"/creatives/{creative.image.name.split('/')[-1]}" in text  # type: ignore[union-attr]
    assert '<a href="https://shop.example/landing?id=1" target="_blank"' in text  # the click
    assert "%%" not in text  # no placeholder left: nothing is tracked
    assert 'src="data:image/gif;base64,' in text  # the impression pixel records nothing


def test_an_html5_creative_is_shown_in_its_frame() -> None:
    org = make_advertiser()
    creative = make_html5_creative(org, "160x600")

    text = page(client_for(org), creative)

    assert f"{creative.bundle_root}/index.html?clickTag=https://shop.example/landing" in text
    assert "%%" not in text


def test_a_video_gets_a_player_per_rendition_and_its_vast_document() -> None:
    org = make_advertiser()
    creative = make_video_creative(org)

    text = page(client_for(org), creative)

    for r in creative.renditions.all():
        assert (
            f'<source src="http://127.0.0.1:8000/media/{r.file.name}" type="{r.mime_type}">' in text
        )
        assert f'width="{r.width}" height="{r.height}"' in text
    assert text.count("<video controls") == 3
    assert '<VAST version="4.2">' in text
    assert "%%" not in text


def test_a_vast_tag_shows_its_url_and_wrapper() -> None:
    org = make_advertiser()
    creative = make_vast_wrapper_creative(org)

    text = page(client_for(staff=True), creative)

    assert "Third-party VAST tag, served as a VAST Wrapper" in text
    assert "<VASTAdTagURI><![CDATA[https://adserver.example/vast?id=42" in text


def test_audio_gets_an_audio_player_per_rendition() -> None:
    org = make_advertiser()
    creative = make_audio_creative(org)

    text = page(client_for(org), creative)

    assert text.count("<audio controls") == 2
    assert 'type="audio/mpeg"' in text and 'type="audio/aac"' in text


def test_native_is_shown_with_its_html_template_at_two_widths_and_its_json() -> None:
    org = make_advertiser()
    creative = make_native_creative(org)

    text = page(client_for(org), creative)

    assert "320 px wide" in text and "640 px wide" in text
    assert text.count("Sponsored by Acme Outdoor") == 2
    assert '"ver": "1.2"' in text
    assert "%%" not in text


def test_the_preview_says_why_a_creative_waits_or_was_rejected() -> None:
    org = make_advertiser()
    creative = make_image_creative(org, approve=False)
    services.reject_creative(creative, reason="Text too small to read.")

    text = page(client_for(org), creative)

    assert 'data-status="rejected">Rejected</strong>: Text too small to read.' in text
