"""Writes to campaigns that carry rules or side effects.

Every change commits first; the serving snapshot is republished after the commit
(`campaigns.signals`), so serving sees it within seconds.
"""

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from django.db import transaction

from campaigns.models import (
    Advertiser,
    Campaign,
    CampaignStatus,
    LineItem,
    LineItemStatus,
    Placement,
)
from creatives.models import Creative


@transaction.atomic
def create_campaign(
    *,
    advertiser: Advertiser,
    name: str,
    start_at: datetime,
    daily_budget: Decimal,
    end_at: datetime | None = None,
) -> Campaign:
    """A new campaign, in draft until activated."""
    campaign = Campaign(
        advertiser=advertiser,
        name=name,
        start_at=start_at,
        end_at=end_at,
        daily_budget=daily_budget,
    )
    campaign.full_clean()
    campaign.save()
    return campaign


@transaction.atomic
def create_line_item(
    *,
    campaign: Campaign,
    name: str,
    cpm_bid: Decimal,
    sizes: list[str],
    creatives: Iterable[Creative] = (),
    placements: Iterable[Placement] = (),
) -> LineItem:
    """A line item with its creatives and placement targeting (none: every placement)."""
    line_item = LineItem(campaign=campaign, name=name, cpm_bid=cpm_bid, sizes=sizes)
    line_item.full_clean()
    line_item.save()
    line_item.creatives.set(creatives)
    line_item.placements.set(placements)
    return line_item


def _set_status(campaign: Campaign, status: CampaignStatus) -> Campaign:
    if campaign.status == CampaignStatus.ARCHIVED:
        raise ValueError("an archived campaign cannot change status")
    campaign.status = status
    campaign.save(update_fields=["status", "updated_at"])
    return campaign


@transaction.atomic
def activate_campaign(campaign: Campaign) -> Campaign:
    """Start delivering (within the campaign's flight dates)."""
    return _set_status(campaign, CampaignStatus.ACTIVE)


@transaction.atomic
def pause_campaign(campaign: Campaign) -> Campaign:
    return _set_status(campaign, CampaignStatus.PAUSED)


@transaction.atomic
def pause_line_item(line_item: LineItem) -> LineItem:
    line_item.status = LineItemStatus.PAUSED
    line_item.save(update_fields=["status", "updated_at"])
    return line_item
