"""`creative_snap`: each kind as the serving snapshot carries it, placeholders left for serving."""

import base64
import hashlib
import html
import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from creatives import services
from creatives.models import Creative
from creatives.placeholders import VIEWABILITY_HANDLER
from creatives.rendering import render_markup
from creatives.snapshot import creative_snap, servable_creatives
from tests.creatives.helpers import served
from tests.factories import (
    LANDING_URL,
    make_advertiser,
    make_audio_creative,
    make_html5_creative,
    make_image_creative,
    make_native_creative,
    make_vast_wrapper_creative,
    make_video_creative,
    verify_shop_domain,
)

pytestmark = pytest.mark.django_db

HTML_PLACEHOLDERS = ("%%IMP_URL%%", "%%CLICK_URL%%", "%%ERROR_URL%%?code=")
VAST_PLACEHOLDERS = (
    "<![CDATA[%%IMP_URL%%]]>",
    "<![CDATA[%%ERROR_URL%%?code=[ERRORCODE]]]>",
    "<![CDATA[%%EVENT_URL%%?e=start]]>",
    "<![CDATA[%%EVENT_URL%%?e=complete]]>",
)


@pytest.fixture(autouse=True)
def _cdn(settings: Any) -> None:
    settings.CDN_BASE_URL = "https://cdn.example.com/ads"


def test_an_image_is_a_banner_of_its_size_with_tracking_and_a_failure_beacon() -> None:
    creative = make_image_creative(make_advertiser(), "728x90")

    snap = creative_snap(creative)

    assert (snap.id, snap.format, snap.size, snap.secure) == (creative.pk, "banner", "728x90", True)
    assert (snap.click_url, snap.adomain, snap.duration, snap.mimes, snap.native) == (
        "https://shop.example/landing?id=1", ["shop.example"], 0, [], "",
    )  # fmt: skip
    assert all(p in snap.markup for p in HTML_PLACEHOLDERS)
    assert f'src="https://cdn.example.com/ads/{creative.image.name}"' in snap.markup
    assert 'onerror="this.onerror=null;new Image().src=&#x27;%%ERROR_URL%%?code=401&#x27;"' in (
        snap.markup
    )


def test_an_html5_bundle_runs_in_a_sandboxed_frame_from_the_cdn() -> None:
    creative = make_html5_creative(make_advertiser(), "160x600")

    snap = creative_snap(creative)

    assert (snap.format, snap.size, snap.secure) == ("banner", "160x600", True)
    src = html.unescape(re.search(r'<iframe src="([^"]+)"', snap.markup).group(1))  # type: ignore[union-attr]
    assert src == (
        f"https://cdn.example.com/ads/{creative.bundle_root}/index.html"
        "?clickTag=%%CLICK_URL%%&errorUrl=%%ERROR_URL%%"
    )
    assert 'sandbox="allow-scripts allow-popups allow-popups-to-escape-sandbox"' in snap.markup
    assert "allow-same-origin" not in snap.markup
    assert "%%IMP_URL%%" in snap.markup
    assert "%%ERROR_URL%%?code=402" in html.unescape(snap.markup)  # the load watchdog


def test_a_third_party_tag_runs_in_a_sandboxed_srcdoc_under_a_content_security_policy() -> None:
    tag = (
        '<script src="https://adserver.example/tag.js?cb=[CACHEBUSTING]&c=%%CLICK_URL%%"></script>'
    )
    creative = make_html5_creative(make_advertiser(), tag=tag)

    snap = creative_snap(creative)

    srcdoc = html.unescape(re.search(r'srcdoc="([^"]+)"', snap.markup).group(1))  # type: ignore[union-attr]
    # The frame's document is HTML again: its attributes are escaped once more.
    csp = html.unescape(re.search(r'Content-Security-Policy" content="([^"]+)"', srcdoc).group(1))  # type: ignore[union-attr]
    assert srcdoc.startswith('<!DOCTYPE html><html><head><meta charset="utf-8">')
    assert csp == (
        "default-src 'self' https: data: blob:; script-src 'self' 'unsafe-inline' "
        "'unsafe-eval' https:; style-src 'self' 'unsafe-inline' https:; img-src 'self' https: "
        "data: blob:; media-src 'self' https: data: blob:; connect-src 'self' https:; "
        "object-src 'none'; base-uri 'none'; form-action 'none'"
    )
    assert (
        '<script src="https://adserver.example/tag.js?cb=%%CACHEBUSTER%%&c=%%CLICK_URL%%">'
        in srcdoc
    )
    assert "var u='%%ERROR_URL%%'" in srcdoc  # the error reporter
    assert 'sandbox="allow-scripts allow-popups allow-popups-to-escape-sandbox"' in snap.markup


def test_an_html5_tag_not_marked_secure_is_not_secure_in_the_snapshot() -> None:
    org = make_advertiser()
    verify_shop_domain(org)
    creative = services.create_creative(
        advertiser=org, kind="html5", name="Legacy tag", click_url=LANDING_URL, size="300x250",
        html_tag='<img src="http://tracker.example/p.gif">', secure=False,
    )  # fmt: skip

    snap = creative_snap(creative)

    assert snap.secure is False
    assert "https: http:" in html.unescape(html.unescape(snap.markup))  # the CSP allows http


def test_a_video_is_a_vast_inline_with_every_rendition() -> None:
    creative = make_video_creative(make_advertiser(), seconds=15)

    snap = creative_snap(creative)

    assert (snap.format, snap.size, snap.duration) == ("video", "1280x720", 15)
    assert snap.mimes == ["video/mp4", "video/webm"]
    assert all(p in snap.markup for p in VAST_PLACEHOLDERS)
    assert "<AdServingId><![CDATA[%%AD_SERVING_ID%%]]></AdServingId>" in snap.markup
    assert '<ClickThrough id="adsplatform"><![CDATA[%%CLICK_URL%%]]></ClickThrough>' in snap.markup
    assert f'<Ad id="{creative.pk}" adType="video">' in snap.markup
    assert "<Duration>00:00:15.000</Duration>" in snap.markup
    for r in creative.renditions.all():
        assert f"<![CDATA[https://cdn.example.com/ads/{r.file.name}]]>" in snap.markup
        assert f'type="{r.mime_type}" width="{r.width}" height="{r.height}"' in snap.markup


def test_a_vast_tag_is_a_wrapper_with_our_tracking() -> None:
    creative = make_vast_wrapper_creative(make_advertiser())

    snap = creative_snap(creative)

    assert (snap.format, snap.size, snap.duration, snap.mimes) == ("video", "0x0", 30, [])
    assert "<Wrapper " in snap.markup and "<InLine>" not in snap.markup
    assert (
        "<VASTAdTagURI><![CDATA[https://adserver.example/vast?id=42&cb=[CACHEBUSTING]]]>"
        "</VASTAdTagURI>" in snap.markup
    )
    assert '<ClickTracking id="adsplatform"><![CDATA[%%CLICK_URL%%]]></ClickTracking>' in (
        snap.markup
    )
    assert all(p in snap.markup for p in VAST_PLACEHOLDERS)


def test_audio_is_a_vast_audio_ad_of_size_0x0() -> None:
    creative = make_audio_creative(make_advertiser(), seconds=20)

    snap = creative_snap(creative)

    assert (snap.format, snap.size, snap.duration) == ("audio", "0x0", 20)
    assert snap.mimes == ["audio/mpeg", "audio/aac"]
    assert 'adType="audio"' in snap.markup
    assert 'type="audio/mpeg" width="0" height="0"' in snap.markup
    assert all(p in snap.markup for p in VAST_PLACEHOLDERS)


def test_native_has_an_html_form_and_an_openrtb_native_response() -> None:
    creative = make_native_creative(make_advertiser())

    snap = creative_snap(creative)

    assert (snap.format, snap.size) == ("native", "1200x627")
    assert all(p in snap.markup for p in HTML_PLACEHOLDERS)
    assert "Boots for every trail" in snap.markup and "Sponsored by Acme Outdoor" in snap.markup
    image_url = f"https://cdn.example.com/ads/{creative.image.name}"
    assert json.loads(snap.native) == {
        "ver": "1.2",
        "assets": [
            {"id": 1, "required": 1, "title": {"text": "Boots for every trail", "len": 21}},
            {"id": 2, "required": 1, "img": {"type": 3, "url": image_url, "w": 1200, "h": 627}},
            {"id": 3, "data": {"type": 2, "value": "Waterproof, light, and 20% off this week."}},
            {"id": 4, "data": {"type": 12, "value": "Shop now"}},
            {"id": 5, "data": {"type": 1, "value": "Acme Outdoor"}},
        ],
        "link": {"url": "%%CLICK_URL%%"},
        "eventtrackers": [
            {"event": 1, "method": 1, "url": "%%IMP_URL%%"},
            # Native 1.2 event 2: viewable-mrc50, fired by the renderer that measures it.
            {"event": 2, "method": 1, "url": "%%EVENT_URL%%?e=viewable"},
        ],
    }
    # Signed URLs go in as they are and the JSON stays JSON.
    assert json.loads(served(snap.native))["link"]["url"].startswith("https://ads.example.com/")


def test_categories_reach_the_snapshot_and_vast() -> None:
    org = make_advertiser()
    creative = make_video_creative(org)
    creative = services.update_creative(creative, categories=["IAB8", "IAB8-5"])

    snap = creative_snap(creative)

    assert snap.categories == ["IAB8", "IAB8-5"]
    assert (
        '<Category authority="https://iabtechlab.com/standards/content-taxonomy">IAB8-5'
        "</Category>" in snap.markup
    )


def test_names_are_escaped_in_vast() -> None:
    creative = make_video_creative(make_advertiser("Smith & Sons <Outdoor>"))
    creative = services.update_creative(creative, name='Boots "50% off" & more')

    markup = creative_snap(creative).markup

    assert "<AdTitle>Boots &quot;50% off&quot; &amp; more</AdTitle>" in markup
    assert "<Advertiser>Smith &amp; Sons &lt;Outdoor&gt;</Advertiser>" in markup


def test_render_markup_is_the_snapshot_markup() -> None:
    creative = make_native_creative(make_advertiser())

    assert render_markup(creative) == creative_snap(creative).markup


def test_rendering_the_servable_creatives_runs_no_queries(django_assert_num_queries: Any) -> None:
    org = make_advertiser()
    for factory in (make_image_creative, make_video_creative, make_audio_creative,
                    make_native_creative, make_html5_creative):  # fmt: skip
        factory(org)
    creatives = list(servable_creatives().for_rendering())  # type: ignore[attr-defined]

    with django_assert_num_queries(0):
        snaps = [creative_snap(c) for c in creatives]

    assert sorted(s.format for s in snaps) == ["audio", "banner", "banner", "native", "video"]


def test_only_servable_creatives_are_offered_to_the_snapshot() -> None:
    org = make_advertiser()
    approved = make_image_creative(org)
    make_image_creative(org, approve=False)
    archived = make_image_creative(org)
    Creative.objects.filter(pk=archived.pk).update(archived_at=timezone.now())

    assert list(servable_creatives()) == [approved]


def test_the_viewability_handler_hash_in_the_docs_is_the_handlers() -> None:
    digest = base64.b64encode(hashlib.sha256(VIEWABILITY_HANDLER.encode()).digest()).decode()
    docs = (Path(settings.BASE_DIR) / "docs" / "creatives.md").read_text()
    assert f"'sha256-{digest}'" in docs
