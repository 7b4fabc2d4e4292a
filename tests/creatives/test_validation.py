"""Every rejection names the field, the file and the limit, for every kind of creative."""

import io
import os
import wave
from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from PIL import Image

from campaigns.models import Advertiser
from creatives import services
from creatives.models import Creative
from tests.creatives import media
from tests.factories import LANDING_URL, make_advertiser, verify_shop_domain

pytestmark = pytest.mark.django_db


@pytest.fixture
def org() -> Advertiser:
    advertiser = make_advertiser("Acme Outdoor")
    verify_shop_domain(advertiser)
    return advertiser


def errors_of(org: Advertiser, **fields: Any) -> dict[str, list[str]]:
    fields.setdefault("name", "Spring boots")
    fields.setdefault("click_url", LANDING_URL)
    with pytest.raises(ValidationError) as caught:
        services.create_creative(advertiser=org, **fields)
    assert Creative.objects.count() == 0
    return caught.value.message_dict


def image(width: int, height: int, name: str = "banner.png", fmt: str = "PNG") -> Any:
    return media.upload(media.image_bytes(width, height, fmt), name)


def noise_png(width: int, height: int) -> bytes:
    buf = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(buf, "PNG")
    return buf.getvalue()


def wav(seconds: int = 1) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(bytes(16000 * seconds))
    return buf.getvalue()


# -- Image ------------------------------------------------------------------------------------


def test_an_image_must_have_the_declared_size(org: Advertiser) -> None:
    assert errors_of(org, kind="image", size="300x250", image=image(320, 50)) == {
        "image": ["banner.png is 320x50 pixels; the declared size is 300x250."]
    }


def test_an_image_over_the_weight_limit_is_refused_with_its_weight_and_the_limit(
    org: Advertiser, settings: Any
) -> None:
    settings.CREATIVE_IMAGE_MAX_BYTES = 10 * 1024
    data = noise_png(100, 100)  # incompressible: about 30 KB
    weight = f"{len(data) / 1024:.1f} KB"

    assert errors_of(org, kind="image", size="100x100", image=media.upload(data, "noise.png")) == {
        "image": [f"noise.png weighs {weight}, over the 10.0 KB limit for images."]
    }


def test_a_landing_url_must_be_https(org: Advertiser) -> None:
    assert errors_of(
        org, kind="image", image=image(300, 250), click_url="http://shop.example/"
    ) == {"click_url": ["The landing URL must use https; http://shop.example/ does not."]}


def test_an_image_format_outside_jpeg_png_gif_webp_is_refused(org: Advertiser) -> None:
    bmp = image(300, 250, "banner.bmp", "BMP")

    assert errors_of(org, kind="image", image=bmp) == {
        "image": ["banner.bmp is a BMP image; use JPEG, PNG, GIF or WebP."]
    }


def test_a_corrupt_or_fake_image_is_refused(org: Advertiser) -> None:
    truncated = media.image_bytes(300, 250)[:100]
    fake = b"GIF89a but not really"

    assert errors_of(org, kind="image", image=media.upload(truncated, "banner.png")) == {
        "image": ["banner.png is not a readable image."]
    }
    assert errors_of(org, kind="image", image=media.upload(fake, "fake.gif")) == {
        "image": ["fake.gif is not a readable image."]
    }


def test_an_image_creative_needs_its_image_and_a_well_formed_size(org: Advertiser) -> None:
    assert errors_of(org, kind="image", size="300-250") == {
        "size": ["Sizes look like 300x250; not '300-250'."],
        "image": ["An image creative needs an image file (JPEG, PNG, GIF or WebP)."],
    }


def test_fields_of_another_kind_are_refused_rather_than_ignored(org: Advertiser) -> None:
    assert errors_of(org, kind="image", image=image(300, 250), html_tag="<b>hi</b>") == {
        "html_tag": ["An image creative has no html_tag; leave it empty."]
    }


def test_an_image_without_a_declared_size_takes_the_size_of_its_file(org: Advertiser) -> None:
    creative = services.create_creative(
        advertiser=org, kind="image", name="x", click_url=LANDING_URL, image=image(728, 90)
    )

    assert creative.size == "728x90"


# -- HTML5 ------------------------------------------------------------------------------------


def bundle(data: bytes, name: str = "banner.zip") -> Any:
    return media.upload(data, name)


def test_a_zip_without_the_entry_file_is_refused_and_its_html_pages_are_listed(
    org: Advertiser,
) -> None:
    data = media.zip_bytes({"main.html": "<html></html>", "art/logo.png": b"x"})

    assert errors_of(org, kind="html5", size="300x250", bundle=bundle(data)) == {
        "bundle": [
            "banner.zip has no entry file index.html; set the entry file to the page that "
            "starts the ad (HTML files in the zip: main.html)."
        ]
    }


def test_a_secure_html5_bundle_loading_an_http_resource_is_refused(org: Advertiser) -> None:
    data = media.html5_zip(extra={"js/app.js": 'load("http://cdn.example/gsap.min.js");'})

    assert errors_of(org, kind="html5", size="300x250", bundle=bundle(data)) == {
        "bundle": [
            "banner.zip: js/app.js loads http://cdn.example/gsap.min.js over http; a secure "
            "creative loads every resource over https."
        ]
    }


def test_a_secure_third_party_tag_loading_an_http_resource_is_refused(org: Advertiser) -> None:
    tag = '<script src="http://adserver.example/tag.js?id=7"></script>'

    assert errors_of(org, kind="html5", size="300x250", html_tag=tag) == {
        "html_tag": [
            "The tag loads http://adserver.example/tag.js?id=7 over http; a secure creative "
            "loads every resource over https."
        ]
    }


def test_xml_namespace_names_are_not_resources(org: Advertiser) -> None:
    svg = '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>'
    data = media.html5_zip(extra={"art.svg": svg})

    creative = services.create_creative(
        advertiser=org, kind="html5", name="x", click_url=LANDING_URL, size="300x250",
        bundle=bundle(data),
    )  # fmt: skip

    assert creative.pk is not None


def test_a_creative_not_marked_secure_may_load_http_resources(org: Advertiser) -> None:
    tag = '<script src="http://adserver.example/tag.js"></script>'

    creative = services.create_creative(
        advertiser=org, kind="html5", name="x", click_url=LANDING_URL, size="300x250",
        html_tag=tag, secure=False,
    )  # fmt: skip

    assert creative.secure is False


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"PK not really a zip", "banner.zip is not a zip archive (or it is damaged)."),
        (
            media.zip_bytes({"index.html": "<html></html>", "../escape.js": "x"}),
            "banner.zip: ../escape.js points outside the bundle; use relative paths inside "
            "the zip.",
        ),
        (
            media.zip_bytes({"index.html": "<html></html>", "/etc/cron.d/x": "x"}),
            "banner.zip: /etc/cron.d/x points outside the bundle; use relative paths inside "
            "the zip.",
        ),
        (
            media.zip_bytes({"index.js": "x"}),
            "banner.zip has no entry file index.html; set the entry file to the page that "
            "starts the ad (HTML files in the zip: none).",
        ),
    ],
)
def test_broken_and_unsafe_zips_are_refused(org: Advertiser, data: bytes, message: str) -> None:
    assert errors_of(org, kind="html5", size="300x250", bundle=bundle(data)) == {
        "bundle": [message]
    }


def test_html5_limits_name_the_limit(org: Advertiser, settings: Any) -> None:
    settings.CREATIVE_HTML5_MAX_FILES = 2
    settings.CREATIVE_HTML5_MAX_UNPACKED_BYTES = 1024
    too_many = media.html5_zip()
    too_big = media.zip_bytes({"index.html": "<html>" + " " * 2000 + "</html>"})

    assert errors_of(org, kind="html5", size="300x250", bundle=bundle(too_many)) == {
        "bundle": ["banner.zip holds 3 files; the limit is 2."]
    }
    assert errors_of(org, kind="html5", size="300x250", bundle=bundle(too_big)) == {
        "bundle": ["banner.zip unpacks to more than 1.0 KB, the limit for HTML5 bundles."]
    }
    settings.CREATIVE_HTML5_MAX_BYTES = 100
    weight = f"{len(too_big)} bytes"
    assert errors_of(org, kind="html5", size="300x250", bundle=bundle(too_big)) == {
        "bundle": [f"banner.zip weighs {weight}, over the 100 bytes limit for HTML5 bundles."]
    }


def test_an_html5_creative_needs_a_size_and_exactly_one_source(org: Advertiser) -> None:
    assert errors_of(org, kind="html5") == {
        "size": ["Give the size the HTML5 creative renders at, like 300x250."],
        "html_tag": ["An HTML5 creative needs a third-party tag or a zip bundle."],
    }
    both = {"html_tag": "<b>ad</b>", "bundle": bundle(media.html5_zip())}
    assert errors_of(org, kind="html5", size="300x250", **both) == {
        "html_tag": ["Give a third-party tag or a zip bundle, not both."]
    }


def test_the_entry_file_may_be_named(org: Advertiser) -> None:
    data = media.zip_bytes({"ad/main.html": "<html><head></head></html>"})

    creative = services.create_creative(
        advertiser=org, kind="html5", name="x", click_url=LANDING_URL, size="160x600",
        bundle=bundle(data), entry_file="ad/main.html",
    )  # fmt: skip

    assert creative.entry_file == "ad/main.html"


# -- Video ------------------------------------------------------------------------------------


def test_a_video_rendition_of_another_media_type_is_refused(org: Advertiser) -> None:
    files = [
        media.upload(media.mp4(640, 360), "spot.mp4"),
        media.upload(media.image_bytes(640, 360), "poster.png"),
        media.upload(media.mp3(), "jingle.mp3"),
    ]

    assert errors_of(org, kind="video", media=files) == {
        "media": [
            "poster.png is a PNG image; video renditions must be MP4 or WebM.",
            "jingle.mp3 is an MP3 file; video renditions must be MP4 or WebM.",
        ]
    }


def test_corrupt_and_truncated_video_files_are_refused(org: Advertiser) -> None:
    files = [
        media.upload(os.urandom(2048), "noise.mp4"),
        media.upload(media.mp4(640, 360)[:400], "cut.mp4"),
    ]

    assert errors_of(org, kind="video", media=files) == {
        "media": [
            "noise.mp4 is not a video file that can be read: it is damaged or not media at all.",
            "cut.mp4 is damaged or truncated: its video track has no dimensions or duration.",
        ]
    }


def test_video_limits_name_the_file_and_the_limit(org: Advertiser, settings: Any) -> None:
    settings.CREATIVE_VIDEO_MAX_BYTES = 4096
    settings.CREATIVE_MAX_DURATION_SECONDS = 10
    big = media.mp4(640, 360, 15)
    small_but_long = media.webm(640, 360, 15)

    assert errors_of(
        org, kind="video",
        media=[media.upload(big, "big.mp4"), media.upload(small_but_long, "long.webm")],
    ) == {
        "media": [
            f"big.mp4 weighs {len(big) / 1024:.1f} KB, over the 4.0 KB limit for video files.",
            "long.webm lasts 15.0 s, over the 10 s limit.",
        ]
    }  # fmt: skip


def test_the_renditions_of_one_video_have_one_length(org: Advertiser) -> None:
    files = [
        media.upload(media.mp4(640, 360, 15), "a.mp4"),
        media.upload(media.mp4(1280, 720, 10), "b.mp4"),
    ]

    assert errors_of(org, kind="video", media=files) == {
        "media": [
            "b.mp4 lasts 10.0 s but a.mp4 lasts 15.0 s; the renditions of one ad have one length."
        ]
    }


def test_a_video_needs_media_or_a_vast_tag_but_not_both(org: Advertiser) -> None:
    assert errors_of(org, kind="video") == {
        "media": ["A video creative needs video files (MP4 or WebM) or a VAST tag URL."]
    }
    both = {
        "media": [media.upload(media.mp4(), "a.mp4")],
        "vast_tag_url": "https://adserver.example/vast",
        "duration": Decimal(15),
    }
    assert errors_of(org, kind="video", **both) == {
        "media": ["Give video files (MP4 or WebM) or a VAST tag URL, not both."]
    }


def test_a_vast_tag_must_be_https_when_secure_and_declare_its_duration(org: Advertiser) -> None:
    assert errors_of(org, kind="video", vast_tag_url="http://adserver.example/vast") == {
        "vast_tag_url": [
            "A secure creative's VAST tag must use https; http://adserver.example/vast does not."
        ],
        "duration": ["Give the duration, in seconds, of the ad the VAST tag returns."],
    }


def test_video_facts_are_read_from_the_files(org: Advertiser) -> None:
    creative = services.create_creative(
        advertiser=org, kind="video", name="x", click_url=LANDING_URL,
        media=[
            media.upload(media.mp4(640, 360, 15), "360p.mp4"),
            media.upload(media.webm(1280, 720, 15), "720p.webm"),
        ],
    )  # fmt: skip

    renditions = [
        (r.original_name, r.mime_type, r.width, r.height, r.duration, r.codec)
        for r in creative.renditions.all()
    ]
    assert renditions == [
        ("720p.webm", "video/webm", 1280, 720, Decimal("15.000"), "vp8"),
        ("360p.mp4", "video/mp4", 640, 360, Decimal("15.000"), "avc1"),
    ]
    assert (creative.size, creative.duration) == ("1280x720", Decimal("15.000"))
    assert all(r.bitrate > 0 and r.file_size > 0 for r in creative.renditions.all())


# -- Audio ------------------------------------------------------------------------------------


def test_audio_must_be_mp3_or_aac(org: Advertiser) -> None:
    files = [
        media.upload(wav(), "voice.wav"),
        media.upload(media.mp4(), "spot.mp4"),
    ]

    assert errors_of(org, kind="audio", media=files) == {
        "media": [
            "voice.wav is a WAV file; audio must be MP3 or AAC (.aac or .m4a).",
            "spot.mp4 is a video file; audio must be MP3 or AAC (.aac or .m4a).",
        ]
    }


def test_audio_facts_are_read_from_mp3_and_aac_files(org: Advertiser) -> None:
    creative = services.create_creative(
        advertiser=org, kind="audio", name="x", click_url=LANDING_URL,
        media=[
            media.upload(media.mp3(30), "a.mp3"),
            media.upload(media.adts(30), "a.aac"),
            media.upload(media.m4a(30), "a.m4a"),
        ],
    )  # fmt: skip

    facts = [(r.mime_type, r.codec, r.duration) for r in creative.renditions.all()]
    # 234 ADTS frames of 1,024 samples at 8 kHz; 833 MP3 frames of 1,152 samples at 32 kHz.
    assert sorted(facts) == [
        ("audio/aac", "mp4a.40.2", Decimal("29.952")),
        ("audio/mp4", "mp4a.40.2", Decimal("30.000")),
        ("audio/mpeg", "mp3", Decimal("29.988")),
    ]
    assert creative.size == "0x0"


def test_a_corrupt_audio_file_is_refused(org: Advertiser) -> None:
    assert errors_of(org, kind="audio", media=[media.upload(os.urandom(1000), "spot.mp3")]) == {
        "media": [
            "spot.mp3 is not an audio file that can be read: it is damaged or not media at all."
        ]
    }


# -- Native -----------------------------------------------------------------------------------


def test_a_native_creative_needs_each_of_its_assets(org: Advertiser) -> None:
    assert errors_of(org, kind="native") == {
        "title": ["A native creative needs a title."],
        "body": ["A native creative needs a body text."],
        "call_to_action": ["A native creative needs a call to action (like 'Shop now')."],
        "sponsored_by": ["A native creative needs the sponsor's name."],
        "image": ["A native creative needs an image (JPEG, PNG, GIF or WebP)."],
    }


def test_native_text_lengths_and_image_weight_are_limited(org: Advertiser, settings: Any) -> None:
    settings.CREATIVE_NATIVE_IMAGE_MAX_BYTES = 1024
    data = noise_png(60, 60)

    assert errors_of(
        org, kind="native", title="T" * 95, body="Body", call_to_action="Go",
        sponsored_by="Acme", image=media.upload(data, "hero.png"),
    ) == {
        "title": ["Ensure this value has at most 90 characters (it has 95)."],
        "image": [
            f"hero.png weighs {len(data) / 1024:.1f} KB, over the 1.0 KB limit for native images."
        ],
    }  # fmt: skip


def test_urls_carry_no_characters_that_must_be_percent_encoded(org: Advertiser) -> None:
    assert errors_of(
        org, kind="video", click_url='https://shop.example/"><script>',
        vast_tag_url="https://adserver.example/vast?x={id}", duration=Decimal(15),
    ) == {
        "click_url": ["The landing URL has characters to percent-encode: '\"' '<' '>'."],
        "vast_tag_url": ["The VAST tag URL has characters to percent-encode: '{' '}'."],
    }  # fmt: skip
