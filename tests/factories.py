"""Plain factory functions for tests: real rows through the real services."""

import io
import itertools
from datetime import timedelta
from decimal import Decimal

from django.core.files.base import ContentFile
from django.utils import timezone
from PIL import Image

from campaigns import services
from campaigns.models import Advertiser, Campaign, LineItem, Placement, Publisher
from creatives.models import Creative

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
