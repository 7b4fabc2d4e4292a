"""A placement whose click-through rate is far above its own norm is flagged for review.

Once an hour, for the last complete hour: each placement's CTR against its CTR over the
seven days before. Over IVT_CTR_FLAG_RATIO times the norm, with IVT_CTR_FLAG_MIN_CLICKS
clicks at least (a handful of clicks says nothing), the hour is flagged: an invalid-traffic
row with reason "ctr_outlier" on line item 0 holding the hour's impressions and clicks as
flagged (billed, for ad ops to look at and refund if they judge so). Setting, not adding,
the counts keeps a repeated run harmless.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Sum

from reporting.ivt.models import IvtHourly, IvtReason
from reporting.models import HourlyRollup

NORM_DAYS = 7


def review_ctr(hour: datetime) -> list[int]:
    """Flag the placements whose CTR in `hour` is far above their norm; their ids."""
    ratio, min_clicks = settings.IVT_CTR_FLAG_RATIO, settings.IVT_CTR_FLAG_MIN_CLICKS
    this_hour = {
        r["placement_id"]: r
        for r in HourlyRollup.objects.filter(hour=hour)
        .values("placement_id")
        .annotate(imps=Sum("impressions"), clicks=Sum("clicks"))
        if r["clicks"] >= min_clicks and r["imps"]
    }
    if not this_hour:
        return []
    norms = {
        r["placement_id"]: r
        for r in HourlyRollup.objects.filter(
            placement_id__in=list(this_hour),
            hour__gte=hour - timedelta(days=NORM_DAYS),
            hour__lt=hour,
        )
        .values("placement_id")
        .annotate(imps=Sum("impressions"), clicks=Sum("clicks"))
    }
    flagged = []
    for placement_id, r in this_hour.items():
        norm = norms.get(placement_id)
        if norm is None or not norm["imps"] or not norm["clicks"]:
            continue  # no history to compare with
        if r["clicks"] / r["imps"] > ratio * norm["clicks"] / norm["imps"]:
            IvtHourly.objects.update_or_create(
                hour=hour,
                placement_id=placement_id,
                line_item_id=0,
                reason=IvtReason.CTR_OUTLIER,
                currency=settings.SERVING_CURRENCY,
                defaults={
                    "campaign_id": 0,
                    "advertiser_id": 0,
                    "flagged_impressions": r["imps"],
                    "flagged_clicks": r["clicks"],
                },
            )
            flagged.append(placement_id)
    return sorted(flagged)
