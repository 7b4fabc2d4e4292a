"""Plain factory functions for tests: real rows through the real services."""

import io
import itertools
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.core.files.base import ContentFile
from django.utils import timezone
from PIL import Image

from campaigns import services
from campaigns.models import Advertiser, Campaign, LineItem, Placement, Publisher
from creatives import services as creative_services
from creatives.models import Creative, CreativeKind, ReviewStatus, VerifiedDomain
from tests.creatives import media

_seq = itertools.count(1)


def png(width: int, height: int, fmt: str = "PNG") -> "ContentFile[bytes]":
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (next(_seq) % 255, 80, 160)).save(buf, format=fmt)
    return ContentFile(buf.getvalue(), name=f"banner.{fmt.lower()}")


def make_advertiser(name: str = "") -> Advertiser:
    return Advertiser.objects.create(name=name or f"Advertiser {next(_seq)}")


def make_placement(
    sizes: list[str] | None = None, floor: Decimal = Decimal("0"), key: str = ""
) -> Placement:
    publisher = Publisher.objects.create(name=f"Publisher {next(_seq)}")
    return Placement.objects.create(
        publisher=publisher,
        name="Top",
        sizes=sizes or ["300x250", "728x90"],
        floor_cpm=floor,
        **({"key": key} if key else {}),
    )


def make_creative(advertiser: Advertiser, size: str = "300x250") -> Creative:
    w, h = (int(x) for x in size.split("x"))
    creative = Creative(
        advertiser=advertiser,
        name=f"Creative {next(_seq)}",
        click_url="https://shop.example/landing?id=1",
        image=png(w, h),
        # Already reviewed: what serves is approved creatives (creatives.services reviews).
        status=ReviewStatus.APPROVED,
    )
    creative.full_clean()
    creative.save()
    return creative


def make_campaign(
    advertiser: Advertiser | None = None,
    daily_budget: Decimal = Decimal("100.00"),
    active: bool = True,
    **kwargs: object,
) -> Campaign:
    campaign = services.create_campaign(
        advertiser=advertiser or make_advertiser(),
        name=f"Campaign {next(_seq)}",
        start_at=kwargs.pop("start_at", timezone.now() - timedelta(hours=1)),
        daily_budget=daily_budget,
        end_at=kwargs.pop("end_at", None),
    )
    if active:
        services.activate_campaign(campaign)
    return campaign


def make_line_item(
    campaign: Campaign,
    cpm: str,
    size: str = "300x250",
    placements: list[Placement] | None = None,
) -> LineItem:
    return services.create_line_item(
        campaign=campaign,
        name=f"Line item {next(_seq)}",
        bid=Decimal(cpm),
        sizes=[size],
        creatives=[make_creative(campaign.advertiser, size)],
        placements=placements or [],
    )


# -- Creatives of every kind, through creatives.services -------------------------------------
# Each verifies the landing domain (shop.example) for the advertiser and, unless
# approve=False, approves the creative: ready for the snapshot (Creative.objects.servable()).

LANDING_URL = "https://shop.example/landing?id=1"


def verify_shop_domain(advertiser: Advertiser) -> None:
    VerifiedDomain.objects.get_or_create(advertiser=advertiser, domain="shop.example")


def _finish(creative: Creative, approve: bool) -> Creative:
    if approve:
        creative = creative_services.approve_creative(creative)
    return creative


def make_image_creative(
    advertiser: Advertiser, size: str = "300x250", *, approve: bool = True
) -> Creative:
    w, h = (int(x) for x in size.split("x"))
    verify_shop_domain(advertiser)
    creative = creative_services.create_creative(
        advertiser=advertiser, kind=CreativeKind.IMAGE, name=f"Image {next(_seq)}",
        click_url=LANDING_URL, size=size, image=png(w, h), alt_text="Boots",
    )  # fmt: skip
    return _finish(creative, approve)


def make_html5_creative(
    advertiser: Advertiser, size: str = "300x250", *, tag: str = "", approve: bool = True
) -> Creative:
    """A zip bundle (index.html, style.css, logo.png), or a third-party tag when `tag` is set."""
    verify_shop_domain(advertiser)
    source: dict[str, Any] = (
        {"html_tag": tag} if tag else {"bundle": media.upload(media.html5_zip(), "banner.zip")}
    )
    creative = creative_services.create_creative(
        advertiser=advertiser, kind=CreativeKind.HTML5, name=f"HTML5 {next(_seq)}",
        click_url=LANDING_URL, size=size, **source,
    )  # fmt: skip
    return _finish(creative, approve)


def make_video_creative(
    advertiser: Advertiser, *, seconds: float = 15.0, approve: bool = True
) -> Creative:
    """Three renditions: MP4 640x360 and 1280x720, WebM 640x360."""
    verify_shop_domain(advertiser)
    files = [
        media.upload(media.mp4(640, 360, seconds), "spot-360p.mp4"),
        media.upload(media.mp4(1280, 720, seconds), "spot-720p.mp4"),
        media.upload(media.webm(640, 360, seconds), "spot-360p.webm"),
    ]
    creative = creative_services.create_creative(
        advertiser=advertiser, kind=CreativeKind.VIDEO, name=f"Video {next(_seq)}",
        click_url=LANDING_URL, media=files,
    )  # fmt: skip
    return _finish(creative, approve)


def make_vast_wrapper_creative(
    advertiser: Advertiser, *, kind: str = CreativeKind.VIDEO, approve: bool = True
) -> Creative:
    """A third-party VAST tag (served as a VAST Wrapper), declared 30 s long."""
    verify_shop_domain(advertiser)
    creative = creative_services.create_creative(
        advertiser=advertiser, kind=kind, name=f"VAST tag {next(_seq)}",
        click_url=LANDING_URL, duration=Decimal("30"),
        vast_tag_url="https://adserver.example/vast?id=42&cb=[CACHEBUSTING]",
    )  # fmt: skip
    return _finish(creative, approve)


def make_audio_creative(
    advertiser: Advertiser, *, seconds: float = 15.0, approve: bool = True
) -> Creative:
    """Two renditions: MP3 and AAC (ADTS)."""
    verify_shop_domain(advertiser)
    files = [
        media.upload(media.mp3(seconds), "spot.mp3"),
        media.upload(media.adts(seconds), "spot.aac"),
    ]
    creative = creative_services.create_creative(
        advertiser=advertiser, kind=CreativeKind.AUDIO, name=f"Audio {next(_seq)}",
        click_url=LANDING_URL, media=files,
    )  # fmt: skip
    return _finish(creative, approve)


def make_native_creative(advertiser: Advertiser, *, approve: bool = True) -> Creative:
    """Title, body, a 1200x627 image, call to action and sponsor."""
    verify_shop_domain(advertiser)
    creative = creative_services.create_creative(
        advertiser=advertiser, kind=CreativeKind.NATIVE, name=f"Native {next(_seq)}",
        click_url=LANDING_URL, image=png(1200, 627, "JPEG"), title="Boots for every trail",
        body="Waterproof, light, and 20% off this week.", call_to_action="Shop now",
        sponsored_by="Acme Outdoor",
    )  # fmt: skip
    return _finish(creative, approve)
