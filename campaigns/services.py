"""Writes to campaigns: validated, audited, and republished to serving after the commit.

Every function here takes the acting user (`by`) for the audit log. The serving snapshot is
republished after the commit by `campaigns.signals`, whichever path wrote the row.
"""

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models, transaction

from campaigns import audit
from campaigns.models import (
    Advertiser,
    AuditAction,
    Campaign,
    CampaignStatus,
    Deal,
    LineItem,
    LineItemCreative,
    LineItemStatus,
    Placement,
)
from creatives.models import Creative


class StaleVersion(Exception):
    """The object changed since the caller read it (optimistic concurrency)."""

    def __init__(self, current: int) -> None:
        super().__init__(f"the object is at version {current}")
        self.current = current


def _org(obj: models.Model) -> Advertiser:
    if isinstance(obj, Campaign | Deal):
        return obj.advertiser
    if isinstance(obj, LineItem):
        return obj.campaign.advertiser
    raise TypeError(f"no organisation for {type(obj).__name__}")


def _create[M: models.Model](obj: M, by: Any) -> M:
    obj.full_clean()
    obj.save()
    changes = audit.diff({}, audit.snapshot_fields(obj))
    audit.record(obj, AuditAction.CREATE, advertiser=_org(obj), by=by, changes=changes)
    return obj


def update[M: models.Model](
    obj: M,
    *,
    by: Any,
    expected_version: int | None = None,
    action: AuditAction = AuditAction.UPDATE,
    **fields: Any,
) -> M:
    """Change fields on the current row, validate, bump the version, record what changed."""
    # Lock and re-read: the change applies to the stored row, not to a stale copy.
    locked = type(obj)._default_manager.select_for_update().get(pk=obj.pk)
    current = locked.version  # type: ignore[attr-defined]
    if expected_version is not None and expected_version != current:
        raise StaleVersion(current)
    before = audit.snapshot_fields(locked)
    for name, value in fields.items():
        setattr(locked, name, value)
    locked.full_clean()
    changes = audit.diff(before, audit.snapshot_fields(locked))
    if changes:
        locked.version = current + 1  # type: ignore[attr-defined]
        locked.save()
        audit.record(locked, action, advertiser=_org(locked), by=by, changes=changes)
    obj.refresh_from_db()
    return obj


@transaction.atomic
def create_campaign(*, advertiser: Advertiser, by: Any = None, **fields: Any) -> Campaign:
    """A new campaign, in draft until activated."""
    fields.setdefault("currency", advertiser.currency)
    return _create(Campaign(advertiser=advertiser, **fields), by)


@transaction.atomic
def update_campaign(campaign: Campaign, *, by: Any = None, **fields: Any) -> Campaign:
    if campaign.status == CampaignStatus.ARCHIVED:
        raise ValidationError("An archived campaign cannot be changed.")
    if "status" in fields:
        raise ValidationError({"status": "Use activate, pause or archive to change the status."})
    return update(campaign, by=by, **fields)


# Which status each state change may start from.
_CAMPAIGN_MOVES = {
    CampaignStatus.ACTIVE: {CampaignStatus.DRAFT, CampaignStatus.PAUSED},
    CampaignStatus.PAUSED: {CampaignStatus.ACTIVE},
    CampaignStatus.ARCHIVED: {CampaignStatus.DRAFT, CampaignStatus.ACTIVE, CampaignStatus.PAUSED},
}


def _move_campaign(campaign: Campaign, to: CampaignStatus, by: Any) -> Campaign:
    if campaign.status == to:
        return campaign
    if campaign.status not in _CAMPAIGN_MOVES[to]:
        raise ValidationError(
            {"status": f"{campaign.status.capitalize()} campaigns cannot become {to}."}
        )
    return update(campaign, by=by, action=AuditAction.STATUS, status=to)


@transaction.atomic
def activate_campaign(campaign: Campaign, *, by: Any = None) -> Campaign:
    """Start delivering (within the flight dates)."""
    return _move_campaign(campaign, CampaignStatus.ACTIVE, by)


@transaction.atomic
def pause_campaign(campaign: Campaign, *, by: Any = None) -> Campaign:
    return _move_campaign(campaign, CampaignStatus.PAUSED, by)


@transaction.atomic
def archive_campaign(campaign: Campaign, *, by: Any = None) -> Campaign:
    """Stop for good: an archived campaign never comes back."""
    for line_item in campaign.line_items.exclude(status=LineItemStatus.ARCHIVED):
        archive_line_item(line_item, by=by)
    return _move_campaign(campaign, CampaignStatus.ARCHIVED, by)


@transaction.atomic
def create_line_item(
    *,
    campaign: Campaign,
    by: Any = None,
    creatives: Iterable[Creative] = (),
    placements: Iterable[Placement] = (),
    deals: Iterable[Deal] = (),
    **fields: Any,
) -> LineItem:
    """A line item with its creatives, placement targeting (none: all) and deals."""
    if campaign.status == CampaignStatus.ARCHIVED:
        raise ValidationError({"campaign": "The campaign is archived."})
    line_item = _create(LineItem(campaign=campaign, **fields), by)
    line_item.placements.set(placements)
    line_item.deals.set(deals)
    for creative in creatives:
        assign_creative(line_item, creative, by=by)
    return line_item


@transaction.atomic
def update_line_item(line_item: LineItem, *, by: Any = None, **fields: Any) -> LineItem:
    if line_item.status == LineItemStatus.ARCHIVED:
        raise ValidationError("An archived line item cannot be changed.")
    if "status" in fields:
        raise ValidationError({"status": "Use activate, pause or archive to change the status."})
    return update(line_item, by=by, **fields)


def _move_line_item(line_item: LineItem, to: LineItemStatus, by: Any) -> LineItem:
    if line_item.status == to:
        return line_item
    if line_item.status == LineItemStatus.ARCHIVED:
        raise ValidationError({"status": "An archived line item never comes back."})
    return update(line_item, by=by, action=AuditAction.STATUS, status=to)


@transaction.atomic
def activate_line_item(line_item: LineItem, *, by: Any = None) -> LineItem:
    return _move_line_item(line_item, LineItemStatus.ACTIVE, by)


@transaction.atomic
def pause_line_item(line_item: LineItem, *, by: Any = None) -> LineItem:
    return _move_line_item(line_item, LineItemStatus.PAUSED, by)


@transaction.atomic
def archive_line_item(line_item: LineItem, *, by: Any = None) -> LineItem:
    return _move_line_item(line_item, LineItemStatus.ARCHIVED, by)


@transaction.atomic
def assign_creative(
    line_item: LineItem, creative: Creative, *, weight: int = 1, by: Any = None
) -> LineItemCreative:
    """Show a creative on a line item (or change its rotation weight)."""
    assignment = LineItemCreative.objects.filter(line_item=line_item, creative=creative).first()
    old = assignment.weight if assignment else None
    if assignment is None:
        assignment = LineItemCreative(line_item=line_item, creative=creative, weight=weight)
    assignment.weight = weight
    assignment.full_clean()
    assignment.save()
    if old != weight:
        audit.record(
            line_item, AuditAction.UPDATE, advertiser=_org(line_item), by=by,
            changes={f"creative {creative.pk} weight": [old, weight]},
        )  # fmt: skip
    return assignment


@transaction.atomic
def unassign_creative(assignment: LineItemCreative, *, by: Any = None) -> None:
    line_item = assignment.line_item
    audit.record(
        line_item, AuditAction.UPDATE, advertiser=_org(line_item), by=by,
        changes={f"creative {assignment.creative_id} weight": [assignment.weight, None]},
    )  # fmt: skip
    assignment.delete()


@transaction.atomic
def create_deal(*, advertiser: Advertiser, by: Any = None, **fields: Any) -> Deal:
    return _create(Deal(advertiser=advertiser, **fields), by)


@transaction.atomic
def update_deal(deal: Deal, *, by: Any = None, **fields: Any) -> Deal:
    return update(deal, by=by, **fields)
