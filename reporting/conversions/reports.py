"""Conversions in the reports: conversions, conversion rate, CPA and ROAS per campaign.

Counted by conversion time within the period, credited to the campaign attribution chose.
Values were converted into the campaign's currency at attribution (`attributed_value`), so
CPA and ROAS are in the same currency as the spend beside them; a value whose currency had
no rate is not added to anything (the ROAS then leaves it out).
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Count, Sum

from reporting.conversions.models import Conversion

CENTS = Decimal("0.01")
COLUMNS = ["Conversions", "Conversion rate %", "CPA", "ROAS"]


@dataclass
class ConversionSums:
    conversions: int = 0
    value: Decimal = Decimal(0)

    def metrics(self, clicks: int, spend: Decimal) -> list[int | Decimal | None]:
        """Conversions, conversion rate % (of clicks), CPA and ROAS (value / spend)."""
        n = self.conversions
        rate = (Decimal(n) * 100 / clicks).quantize(CENTS, ROUND_HALF_UP) if clicks else None
        cpa = (spend / n).quantize(CENTS, ROUND_HALF_UP) if n else None
        roas = (self.value / spend).quantize(CENTS, ROUND_HALF_UP) if spend and n else None
        return [n, rate, cpa, roas]


def conversions_by_campaign(
    campaign_ids: list[int], start: datetime, end: datetime
) -> dict[int, ConversionSums]:
    """Attributed conversions per campaign converted in [start, end): one query."""
    rows = (
        Conversion.objects.attributed()
        .filter(campaign_id__in=campaign_ids, converted_at__gte=start, converted_at__lt=end)
        .values("campaign_id")
        .annotate(n=Count("id"), value=Sum("attributed_value"))
        .order_by()
    )
    return {r["campaign_id"]: ConversionSums(r["n"], r["value"] or Decimal(0)) for r in rows}
