"""Issue 12 item 15: hostile uploads are refused with a clear error, each kind of attack."""

import io
import struct
import zlib
from typing import Any

import pytest

from campaigns.models import Advertiser
from tests.creatives import media
from tests.creatives.test_validation import bundle, errors_of, org  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels (the pixels themselves are absent)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


def test_a_decompression_bomb_image_is_refused(org: Advertiser) -> None:  # noqa: F811
    bomb = media.upload(_png_claiming(30000, 30000), "banner.png")

    errors = errors_of(org, kind="image", size="300x250", image=bomb)

    assert list(errors) == ["image"]
    assert errors["image"][0].startswith("banner.png has too many pixels (Image size (900000000")


def test_a_zip_bomb_is_refused_before_it_is_unpacked(org: Advertiser) -> None:  # noqa: F811
    zeros = b"\x00" * (50 * 1024 * 1024)  # 50 MB that deflate to about 50 KB
    data = media.zip_bytes({"index.html": "<html></html>", "pad.bin": zeros})
    assert len(data) < 100 * 1024

    assert errors_of(org, kind="html5", size="300x250", bundle=bundle(data)) == {
        "bundle": ["banner.zip unpacks to more than 5.0 MB, the limit for HTML5 bundles."]
    }


@pytest.mark.parametrize("name", ["..\\\\evil.js", "C:/evil.js", "a/../../evil.js"])
def test_path_traversal_in_a_bundle_is_refused(org: Advertiser, name: str) -> None:  # noqa: F811
    data = media.zip_bytes({"index.html": "<html></html>", name: "x"})

    assert errors_of(org, kind="html5", size="300x250", bundle=bundle(data)) == {
        "bundle": [
            f"banner.zip: {name} points outside the bundle; use relative paths inside the zip."
        ]
    }


def test_an_svg_with_script_is_not_an_image(org: Advertiser) -> None:  # noqa: F811
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>'

    errors = errors_of(org, kind="image", size="300x250", image=media.upload(svg, "banner.svg"))

    assert errors == {"image": ["banner.svg is not a readable image."]}


@pytest.mark.parametrize(
    ("payload", "what"),
    [
        (b"<script>alert(document.cookie)</script>", "a script"),
        (b"<HTML><body onload=alert(1)>", "an HTML page"),
        (media.zip_bytes({"a.class": "x"}), "a zip archive"),
    ],
)
def test_a_polyglot_image_is_refused(org: Advertiser, payload: bytes, what: str) -> None:  # noqa: F811
    polyglot = media.image_bytes(300, 250, "GIF") + payload

    errors = errors_of(
        org, kind="image", size="300x250", image=media.upload(polyglot, "banner.gif")
    )

    assert errors == {
        "image": [
            f"banner.gif is an image with {what} inside it (a polyglot file); export the image "
            "again from an image editor."
        ]
    }


def test_an_oversized_image_is_refused_with_its_weight(org: Advertiser, settings: Any) -> None:  # noqa: F811
    settings.CREATIVE_IMAGE_MAX_BYTES = 1024
    big = io.BytesIO()
    from PIL import Image

    Image.effect_noise((300, 250), 64).convert("RGB").save(big, "PNG")

    errors = errors_of(
        org, kind="image", size="300x250", image=media.upload(big.getvalue(), "banner.png")
    )

    assert errors["image"][0].startswith("banner.png weighs ")
    assert errors["image"][0].endswith("over the 1.0 KB limit for images.")
