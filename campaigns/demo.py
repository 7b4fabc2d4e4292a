"""Demo data a new user can click through: one advertiser, two campaigns, one publisher."""

import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from PIL import Image, ImageDraw

from campaigns import services
from campaigns.demo_accounts import ARTICLE_KEY, DEMO_STAFF, DEMO_USER, HOME_KEY
from campaigns.models import (
    Advertiser,
    Campaign,
    Membership,
    PacingMode,
    Placement,
    Publisher,
    Role,
)
from creatives import services as creative_services
from creatives.models import Creative, VerifiedDomain


@dataclass(frozen=True)
class DemoData:
    placement_key: str
    advertiser: Advertiser


def _banner(width: int, height: int, text: str, colour: str) -> "ContentFile[bytes]":
    img = Image.new("RGB", (width, height), colour)
    draw = ImageDraw.Draw(img)
    draw.rectangle((3, 3, width - 4, height - 4), outline="white", width=3)
    draw.text((14, height // 2 - 6), text, fill="white")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return ContentFile(buf.getvalue(), name=f"{text[:20].replace(' ', '-').lower()}.png")


def _creative(
    advertiser: Advertiser, name: str, size: tuple[int, int], colour: str, approve: bool = True
) -> Creative:
    """A banner on the demo advertiser's verified domain, approved as a reviewer would."""
    VerifiedDomain.objects.get_or_create(
        advertiser=advertiser, domain="example.com", defaults={"note": "demo data"}
    )
    creative = Creative.objects.filter(advertiser=advertiser, name=name).first()
    if creative is None:
        creative = Creative(
            advertiser=advertiser,
            name=name,
            alt_text=name,
            click_url="https://example.com/outdoor?utm_source=adsplatform",
            image=_banner(*size, name, colour),
        )
        creative.full_clean()
        creative.save()
        if approve:
            creative_services.approve_creative(creative)
    return creative


def _campaign(
    advertiser: Advertiser,
    name: str,
    budget: Decimal,
    start: datetime,
    pacing: PacingMode = PacingMode.EVEN,
) -> Campaign | None:
    """A new demo campaign, or None when it exists already."""
    if Campaign.objects.filter(advertiser=advertiser, name=name).exists():
        return None
    return services.create_campaign(
        advertiser=advertiser, name=name, start_at=start, daily_budget=budget, pacing_mode=pacing
    )


@transaction.atomic
def load_demo() -> DemoData:
    """Create the demo objects; running it again changes nothing."""
    user_model = get_user_model()
    demo = user_model.objects.filter(username=DEMO_USER[0]).first()
    if demo is None:
        demo = user_model.objects.create_user(DEMO_USER[0], password=DEMO_USER[1])
    if not user_model.objects.filter(username=DEMO_STAFF[0]).exists():
        user_model.objects.create_superuser(
            DEMO_STAFF[0], email="adops@example.com", password=DEMO_STAFF[1]
        )

    advertiser, _ = Advertiser.objects.get_or_create(name="Acme Outdoor")
    Membership.objects.get_or_create(
        user=demo, advertiser=advertiser, defaults={"role": Role.ADMIN}
    )

    publisher, _ = Publisher.objects.get_or_create(
        name="Daily Trail News", defaults={"domain": "dailytrail.example"}
    )
    home, _ = Placement.objects.get_or_create(
        key=HOME_KEY,
        defaults={"publisher": publisher, "name": "Home top", "sizes": ["300x250", "728x90"]},
    )
    Placement.objects.get_or_create(
        key=ARTICLE_KEY,
        defaults={
            "publisher": publisher,
            "name": "Article sidebar",
            "sizes": ["300x250"],
            "floor_cpm": Decimal("1.00"),
        },
    )

    boots_mrec = _creative(advertiser, "Hiking boots 300x250", (300, 250), "#2e7d32")
    boots_board = _creative(advertiser, "Hiking boots 728x90", (728, 90), "#1b5e20")
    tents = _creative(advertiser, "Tent clearance 300x250", (300, 250), "#e65100")
    # One left in the review queue, for ad ops to approve in the demo.
    _creative(advertiser, "Rain jacket 300x250", (300, 250), "#1565c0", approve=False)

    start = timezone.now() - timedelta(days=1)
    # ASAP: a new user's first requests fill. An evenly paced campaign with no traffic
    # history starts by probing at a low pass-through (docs/pacing.md), as "Tent clearance"
    # shows on its pacing page.
    boots = _campaign(advertiser, "Spring hiking boots", Decimal("50.00"), start, PacingMode.ASAP)
    if boots is not None:
        services.create_line_item(
            campaign=boots, name="Boots, run of network", bid=Decimal("4.50"),
            sizes=["300x250"], creatives=[boots_mrec],
        )  # fmt: skip
        services.create_line_item(
            campaign=boots, name="Boots, home leaderboard", bid=Decimal("6.00"),
            sizes=["728x90"], creatives=[boots_board], placements=[home],
        )  # fmt: skip
        services.activate_campaign(boots)
    tent = _campaign(advertiser, "Tent clearance", Decimal("20.00"), start)
    if tent is not None:
        services.create_line_item(
            campaign=tent, name="Tents, medium rectangle", bid=Decimal("3.20"),
            sizes=["300x250"], creatives=[tents],
        )  # fmt: skip
        services.activate_campaign(tent)
    return DemoData(placement_key=HOME_KEY, advertiser=advertiser)
