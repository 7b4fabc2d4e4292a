"""Checks on what an uploader sends, each naming the field, the file and the limit.

`check_creative` reads the creative's own files (image, bundle) and fields; `read_renditions`
reads video and audio files; `domain_problem` is the automatic check on the landing domain,
which depends on the advertiser's verified domains rather than on the upload.
"""

import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from PIL import Image, UnidentifiedImageError

from creatives import html5, media
from creatives.units import seconds, weight
from creatives.verifications import verification_problems
from serving.conversions import CLICK_ID_MACRO

if TYPE_CHECKING:
    from creatives.models import Creative

MAX_TAG_CHARS = 100_000
SIZE_RE = re.compile(r"^([1-9][0-9]{0,3})x([1-9][0-9]{0,3})$")
IMAGE_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# Renditions of one ad differ in size and bitrate, not in length.
DURATION_TOLERANCE = Decimal("0.5")


class Errors:
    """Problems by field, raised together so the uploader sees all of them at once."""

    def __init__(self) -> None:
        self.by_field: dict[str, list[str]] = {}

    def add(self, field: str, message: str) -> None:
        self.by_field.setdefault(field, []).append(message)

    def __bool__(self) -> bool:
        return bool(self.by_field)

    def raise_if_any(self) -> None:
        if self.by_field:
            raise ValidationError(self.by_field)


def parse_size(text: str) -> tuple[int, int]:
    match = SIZE_RE.match(text or "")
    if not match:
        raise ValidationError(f"Sizes look like 300x250; not {text!r}.")
    return int(match.group(1)), int(match.group(2))


def file_label(file: Any) -> str:
    """The name an uploader knows a file by: the uploaded name, or the stored one."""
    return posixpath.basename(str(getattr(file, "name", "") or "")) or "the file"


# -- Domains and landing URLs ----------------------------------------------------------------


def normalise_domain(value: str) -> str:
    return value.strip().lower().rstrip(".")


def validate_domain(value: str) -> None:
    domain = normalise_domain(value)
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise ValidationError(f"{value!r} is not a domain name like acme.com.")


def host_of(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower().rstrip(".")
    except ValueError:
        return ""


# Characters a URL may only carry percent-encoded (RFC 3986): kept out, a URL is safe to put
# in HTML attributes, JSON strings and Location headers as it is.
_UNSAFE_IN_URL = re.compile(r"[\"'<>\\^`{|}\s]")


def unsafe_url_characters(url: str) -> str | None:
    found = sorted(set(_UNSAFE_IN_URL.findall(url)))
    if not found:
        return None
    return " ".join(repr(c) for c in found)


def landing_problem(url: str) -> str | None:
    if url and urlsplit(url).scheme.lower() != "https":
        return f"The landing URL must use https; {url} does not."
    # `{CLICK_ID}` is ours: the click redirect fills it with a URL-safe click id.
    unsafe = unsafe_url_characters(url.replace(CLICK_ID_MACRO, ""))
    if unsafe:
        return f"The landing URL has characters to percent-encode: {unsafe}."
    return None


def matching_domain(host: str, domains: Iterable[str]) -> str | None:
    """The verified domain that covers `host` (itself or a parent domain), if any."""
    for domain in sorted(domains, key=len, reverse=True):
        if host == domain or host.endswith(f".{domain}"):
            return domain
    return None


def domain_problem(creative: "Creative", domains: Sequence[str]) -> str | None:
    host = host_of(creative.click_url)
    if not host or matching_domain(host, domains):
        return None
    owner = creative.advertiser.name
    if not domains:
        return (
            f"The landing domain {host} is not verified: {owner} has no verified domains yet; "
            "ask ad ops to verify it."
        )
    return (
        f"The landing domain {host} is not among {owner}'s verified domains "
        f"({', '.join(sorted(domains))}); ask ad ops to verify it."
    )


# -- Images -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageFacts:
    format: str
    width: int
    height: int
    size: int


class ImageError(ValueError):
    pass


# What a file that is both an image and something else carries: markup or script a browser
# would run if the file were ever sniffed as HTML or SVG, or a whole zip archive appended
# (GIFAR-style). A real image's compressed bytes hold one of these only by a chance of about
# 2^-56 per position; metadata written by image editors holds none.
_POLYGLOT_MARKERS = {
    b"<script": "a script",
    b"<html": "an HTML page",
    b"<svg": "SVG markup",
    b"<iframe": "an iframe",
    b"<?php": "PHP code",
    b"javascript:": "a javascript: URL",
    b"pk\x03\x04": "a zip archive",
}


def _embedded_payload(data: bytes) -> str | None:
    lowered = data.lower()
    for marker, what in _POLYGLOT_MARKERS.items():
        if marker in lowered:
            return what
    return None


def read_image(file: IO[bytes], label: str, max_bytes: int, what: str) -> ImageFacts:
    """Format, pixel size and weight of an image, read from its bytes; raises ImageError."""
    size = getattr(file, "size", None)
    try:
        file.seek(0)
        with Image.open(file) as img:
            fmt, (width, height) = img.format or "", img.size
            img.verify()  # catches truncated and corrupt data the header does not show
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{label} is not a readable image.") from exc
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{label} has too many pixels ({exc}).") from exc
    finally:
        file.seek(0)
    if fmt not in IMAGE_FORMATS:
        raise ImageError(f"{label} is a {fmt} image; use JPEG, PNG, GIF or WebP.")
    if size is None:
        size = len(file.read())
        file.seek(0)
    if size > max_bytes:
        raise ImageError(
            f"{label} weighs {weight(size)}, over the {weight(max_bytes)} limit for {what}."
        )
    file.seek(0)
    payload = _embedded_payload(file.read())
    file.seek(0)
    if payload:
        raise ImageError(
            f"{label} is an image with {payload} inside it (a polyglot file); export the image "
            "again from an image editor."
        )
    return ImageFacts(fmt, width, height, size)


# -- One creative -----------------------------------------------------------------------------

# Fields only some kinds use: filled in on another kind, they would be silently ignored.
_OWN_FIELDS = {
    "image": ("image", "native"),
    "html_tag": ("html5",),
    "bundle": ("html5",),
    "vast_tag_url": ("video", "audio"),
    "ad_verifications": ("video", "audio"),
    "title": ("native",),
    "body": ("native",),
    "call_to_action": ("native",),
    "sponsored_by": ("native",),
}
_KIND_NAMES = {"image": "An image", "html5": "An HTML5", "video": "A video", "audio": "An audio",
               "native": "A native"}  # fmt: skip


def check_creative(creative: "Creative", errors: Errors) -> None:
    """Every problem with the creative's own fields and files (not renditions, not domains)."""
    kind = creative.kind
    for field, kinds in _OWN_FIELDS.items():
        if kind not in kinds and getattr(creative, field):
            errors.add(
                field, f"{_KIND_NAMES.get(kind, kind)} creative has no {field}; leave it empty."
            )
    problem = landing_problem(creative.click_url)
    if problem:
        errors.add("click_url", problem)
    if kind == "image":
        _check_image(creative, errors)
    elif kind == "html5":
        _check_html5(creative, errors)
    elif kind in ("video", "audio"):
        _check_tag_url(creative, errors)
        for problem in verification_problems(creative.ad_verifications):
            errors.add("ad_verifications", problem)
    elif kind == "native":
        _check_native(creative, errors)


def _image_facts(
    creative: "Creative", errors: Errors, max_bytes: int, what: str
) -> ImageFacts | None:
    try:
        return read_image(creative.image, file_label(creative.image), max_bytes, what)
    except ImageError as exc:
        errors.add("image", str(exc))
    return None


def _check_image(creative: "Creative", errors: Errors) -> None:
    if not creative.image:
        errors.add("image", "An image creative needs an image file (JPEG, PNG, GIF or WebP).")
        return
    facts = _image_facts(creative, errors, settings.CREATIVE_IMAGE_MAX_BYTES, "images")
    if facts is None:
        return
    if not creative.width and not creative.height:
        creative.width, creative.height = facts.width, facts.height  # no size declared
    elif (facts.width, facts.height) != (creative.width, creative.height):
        errors.add(
            "image",
            f"{file_label(creative.image)} is {facts.width}x{facts.height} pixels; "
            f"the declared size is {creative.width}x{creative.height}.",
        )


def _check_html5(creative: "Creative", errors: Errors) -> None:
    if not creative.width or not creative.height:
        errors.add("size", "Give the size the HTML5 creative renders at, like 300x250.")
    if creative.html_tag and creative.bundle:
        errors.add("html_tag", "Give a third-party tag or a zip bundle, not both.")
        return
    if not creative.html_tag and not creative.bundle:
        errors.add("html_tag", "An HTML5 creative needs a third-party tag or a zip bundle.")
        return
    if creative.html_tag:
        urls = html5.insecure_urls(creative.html_tag.encode())
        if creative.secure and urls:
            errors.add(
                "html_tag",
                f"The tag loads {urls[0]} over http; a secure creative loads every resource "
                "over https.",
            )
        return
    max_bytes = settings.CREATIVE_HTML5_MAX_BYTES
    label = file_label(creative.bundle)
    if creative.bundle.size > max_bytes:
        errors.add(
            "bundle",
            f"{label} weighs {weight(creative.bundle.size)}, over the {weight(max_bytes)} limit "
            "for HTML5 bundles.",
        )
        return
    try:
        read_bundle_of(creative)
    except html5.BundleError as exc:
        errors.add("bundle", str(exc))


def read_bundle_of(creative: "Creative") -> html5.Bundle:
    creative.bundle.seek(0)
    try:
        return html5.read_bundle(
            creative.bundle, file_label(creative.bundle), creative.entry_file, creative.secure
        )
    finally:
        creative.bundle.seek(0)


def _check_tag_url(creative: "Creative", errors: Errors) -> None:
    url = creative.vast_tag_url
    if not url:
        return
    if creative.secure and urlsplit(url).scheme.lower() != "https":
        errors.add(
            "vast_tag_url",
            f"A secure creative's VAST tag must use https; {url} does not.",
        )
    unsafe = unsafe_url_characters(url)
    if unsafe:
        errors.add("vast_tag_url", f"The VAST tag URL has characters to percent-encode: {unsafe}.")
    if not creative.duration:
        errors.add("duration", "Give the duration, in seconds, of the ad the VAST tag returns.")


def _check_native(creative: "Creative", errors: Errors) -> None:
    for field, what in (
        ("title", "a title"),
        ("body", "a body text"),
        ("call_to_action", "a call to action (like 'Shop now')"),
        ("sponsored_by", "the sponsor's name"),
    ):
        if not getattr(creative, field).strip():
            errors.add(field, f"A native creative needs {what}.")
    if not creative.image:
        errors.add("image", "A native creative needs an image (JPEG, PNG, GIF or WebP).")
        return
    facts = _image_facts(
        creative, errors, settings.CREATIVE_NATIVE_IMAGE_MAX_BYTES, "native images"
    )
    if facts is not None:
        creative.width, creative.height = facts.width, facts.height


# -- Renditions -------------------------------------------------------------------------------


def read_renditions(kind: str, files: Sequence[IO[bytes]]) -> list[media.MediaFacts]:
    """The facts of each media file of a video or audio creative; raises ValidationError."""
    max_bytes = (
        settings.CREATIVE_VIDEO_MAX_BYTES if kind == "video" else settings.CREATIVE_AUDIO_MAX_BYTES
    )
    max_seconds = Decimal(settings.CREATIVE_MAX_DURATION_SECONDS)
    messages: list[str] = []
    facts: list[tuple[str, media.MediaFacts]] = []
    for file in files:
        label = file_label(file)
        try:
            found = media.probe(file, label, kind, max_bytes)
        except media.MediaError as exc:
            messages.append(str(exc))
            continue
        if found.duration > max_seconds:
            messages.append(
                f"{label} lasts {seconds(found.duration)}, over the {max_seconds} s limit."
            )
            continue
        facts.append((label, found))
    if len(facts) > 1 and not messages:
        first_label, first = facts[0]
        for label, other in facts[1:]:
            if abs(other.duration - first.duration) > DURATION_TOLERANCE:
                messages.append(
                    f"{label} lasts {seconds(other.duration)} but {first_label} lasts "
                    f"{seconds(first.duration)}; the renditions of one ad have one length."
                )
    if messages:
        raise ValidationError({"media": messages})
    return [f for _, f in facts]
