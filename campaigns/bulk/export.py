"""An organisation's campaigns, line items and assignments as a bulksheet, ready to edit."""

from zoneinfo import ZoneInfo

from campaigns.bulk import columns as cols
from campaigns.bulk.columns import Entity, Operation
from campaigns.bulk.sheet import write
from campaigns.models import (
    Advertiser,
    Campaign,
    CampaignStatus,
    LineItem,
    LineItemCreative,
    LineItemStatus,
)


def _cells(obj: object, entity: Entity, tz: ZoneInfo) -> dict[str, str]:
    return {
        col.header: col.codec.format(getattr(obj, col.attr), tz)
        for col in cols.FIELD_COLUMNS
        if entity in col.entities
    }


def export_rows(advertiser: Advertiser) -> list[list[str]]:
    """One update row per live object (archived ones are left out), parents before children."""
    tz = ZoneInfo(advertiser.time_zone)
    campaigns = (
        Campaign.objects.filter(advertiser=advertiser)
        .exclude(status=CampaignStatus.ARCHIVED)
        .order_by("pk")
    )
    line_items: dict[int, list[LineItem]] = {}
    for li in (
        LineItem.objects.filter(campaign__advertiser=advertiser)
        .exclude(status=LineItemStatus.ARCHIVED)
        .order_by("pk")
    ):
        line_items.setdefault(li.campaign_id, []).append(li)
    assignments: dict[int, list[LineItemCreative]] = {}
    for a in LineItemCreative.objects.filter(line_item__campaign__advertiser=advertiser).order_by(
        "line_item_id", "creative_id"
    ):
        assignments.setdefault(a.line_item_id, []).append(a)

    def row(entity: Entity, obj: object, cells: dict[str, str]) -> list[str]:
        cells = {
            cols.ENTITY: entity.value,
            cols.OPERATION: Operation.UPDATE.value,
            **cells,
            **_cells(obj, entity, tz),
        }
        return [cells.get(header, "") for header in cols.HEADERS]

    rows = []
    for campaign in campaigns:
        ids = {cols.CAMPAIGN_ID: str(campaign.pk)}
        rows.append(row(Entity.CAMPAIGN, campaign, {**ids, cols.STATUS: campaign.status}))
        for li in line_items.get(campaign.pk, []):
            ids = {cols.CAMPAIGN_ID: str(campaign.pk), cols.LINE_ITEM_ID: str(li.pk)}
            rows.append(row(Entity.LINE_ITEM, li, {**ids, cols.STATUS: li.status}))
            for a in assignments.get(li.pk, []):
                rows.append(
                    row(Entity.ASSIGNMENT, a, {**ids, cols.CREATIVE_ID: str(a.creative_id)})
                )
    return rows


def export_csv(advertiser: Advertiser) -> str:
    """The bulksheet text (three queries, whatever the size)."""
    return write(cols.HEADERS, export_rows(advertiser))
