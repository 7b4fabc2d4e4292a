"""Creative files: content-hashed names through the storage API, CDN URLs, cache headers."""

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.files.storage import storages
from django.test import Client, RequestFactory

from creatives import services
from creatives.files import creative_storage
from creatives.snapshot import creative_snap
from creatives.views import serve_media
from tests.creatives import media
from tests.factories import (
    LANDING_URL,
    make_advertiser,
    make_audio_creative,
    make_html5_creative,
    make_image_creative,
    make_native_creative,
    make_video_creative,
    verify_shop_domain,
)

pytestmark = pytest.mark.django_db


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def stored(name: str) -> bytes:
    with creative_storage().open(name) as f:
        return f.read()


def test_files_are_stored_under_their_content_hash_once() -> None:
    org = make_advertiser()
    first, second = make_image_creative(org), make_image_creative(org)
    data = stored(first.image.name or "")

    assert first.image.name == f"creatives/{digest(data)}.png"
    assert first.image.name != second.image.name  # png() makes each image different
    copy = make_video_creative(org)
    again = make_video_creative(org)
    names = sorted(r.file.name or "" for r in copy.renditions.all())
    assert names == sorted(r.file.name or "" for r in again.renditions.all())  # same bytes
    for name in names:
        assert name == f"creatives/{digest(stored(name))}{Path(name).suffix}"
    files = list((Path(settings.MEDIA_ROOT) / "creatives").glob("*.mp4"))
    assert len(files) == 2  # two MP4 renditions, stored once for both creatives


def test_creative_files_go_through_the_creatives_storage() -> None:
    assert creative_storage() is storages["creatives"]
    assert settings.STORAGES["creatives"]["BACKEND"] == (
        "django.core.files.storage.FileSystemStorage"
    )


def test_an_html5_bundle_is_unpacked_with_a_csp_in_its_entry_page() -> None:
    creative = make_html5_creative(make_advertiser())

    root = creative.bundle_root
    assert creative.bundle.name == f"creatives/{digest(stored(creative.bundle.name or ''))}.zip"
    assert root.startswith("creatives/h5/") and len(root) == len("creatives/h5/") + 32
    assert stored(f"{root}/style.css") == b"body{margin:0;background:#fff}"
    entry = stored(f"{root}/index.html").decode()
    assert entry.startswith(
        '<!DOCTYPE html><html><head><meta charset="utf-8"><meta http-equiv='
        '"Content-Security-Policy" content="default-src \'self\' https: data: blob:; '
    )
    assert "new URLSearchParams(location.search).get('errorUrl')" in entry
    assert entry.endswith("</body></html>")


def test_every_rendered_asset_url_is_on_the_cdn(settings: Any) -> None:
    settings.CDN_BASE_URL = "https://cdn.example.com"
    org = make_advertiser()
    kinds = [make_image_creative(org), make_html5_creative(org), make_video_creative(org),
             make_audio_creative(org), make_native_creative(org)]  # fmt: skip

    for creative in kinds:
        snap = creative_snap(creative)
        urls = [u for u in _urls(snap.markup + snap.native) if "/creatives/" in u]
        assert urls, creative.kind
        assert all(u.startswith("https://cdn.example.com/creatives/") for u in urls), urls
    native = json.loads(creative_snap(kinds[-1]).native)
    assert native["assets"][1]["img"]["url"] == f"https://cdn.example.com/{kinds[-1].image.name}"


def _urls(text: str) -> list[str]:
    return re.findall(r"https?://[^\"'<>\]\s?&]+", text)


def test_the_demo_serves_creative_files_with_a_cdns_cache_headers() -> None:
    creative = make_html5_creative(make_advertiser())
    rf = RequestFactory()

    asset = serve_media(rf.get("/"), f"{creative.bundle_root}/logo.png")
    page = serve_media(rf.get("/"), f"{creative.bundle_root}/index.html")

    assert asset["Cache-Control"] == "public, max-age=31536000, immutable"
    assert asset["Access-Control-Allow-Origin"] == "*"
    assert "Content-Security-Policy" not in asset
    # Opened directly, an uploaded page still never runs with the site's origin.
    assert page["Content-Security-Policy"] == (
        "sandbox allow-scripts allow-popups allow-popups-to-escape-sandbox"
    )


def test_other_media_keep_the_default_headers() -> None:
    other = Path(settings.MEDIA_ROOT) / "exports"
    other.mkdir(parents=True)
    (other / "x.csv").write_text("a,b\n")

    response = serve_media(RequestFactory().get("/"), "exports/x.csv")

    assert "Cache-Control" not in response


def test_the_bundle_directory_changes_with_the_secure_flag() -> None:
    org = make_advertiser()
    verify_shop_domain(org)
    data = media.html5_zip()
    common: dict[str, Any] = {
        "advertiser": org, "kind": "html5", "name": "x", "click_url": LANDING_URL,
        "size": "300x250",
    }  # fmt: skip
    secure = services.create_creative(bundle=media.upload(data, "a.zip"), **common)
    mixed = services.create_creative(bundle=media.upload(data, "a.zip"), secure=False, **common)

    assert secure.bundle.name == mixed.bundle.name  # one zip
    assert secure.bundle_root != mixed.bundle_root  # two entry pages, two policies


@pytest.mark.urls("tests.media_urls")
def test_creative_files_may_be_framed_through_the_whole_middleware_stack() -> None:
    # The HTML5 frame loads its entry page from here: X-Frame-Options would blank it.
    creative = make_html5_creative(make_advertiser())

    page = Client().get(f"/media/{creative.bundle_root}/index.html")
    asset = Client().get(f"/media/{creative.bundle_root}/logo.png")

    assert page.status_code == 200 and asset.status_code == 200
    assert "X-Frame-Options" not in page and "X-Frame-Options" not in asset
    assert page["Content-Security-Policy"].startswith("sandbox allow-scripts")
    assert b"parent.postMessage('ads-frame-loaded','*')" in b"".join(page.streaming_content)  # type: ignore[attr-defined]
