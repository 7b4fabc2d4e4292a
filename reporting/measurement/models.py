"""The measurement rollups' monthly tier: `DemandDaily` summed per closed UTC month, so that a
report over a year reads about twelve rows per key instead of 365.

Registered with the reporting app (imported by `reporting.models`).
"""

from django.db import models

from reporting.models import DemandCounts


class DemandMonthly(DemandCounts):
    """`DemandDaily` summed per UTC calendar month (`month`: midnight of its first day, UTC),
    written by the roll-up job once every day of the month is rolled (`RolledMonth`). Reports
    read whole months from here, the days around them from `DemandDaily`."""

    month = models.DateTimeField()

    class Meta:
        app_label = "reporting"
        constraints = [
            models.UniqueConstraint(
                fields=["month", "placement_id", "line_item_id", "buyer_id", "currency", "door"],
                name="one_demand_row_per_month",
            )
        ]
        indexes = [
            models.Index(fields=["advertiser_id", "month"], name="demand_monthly_adv_month"),
            models.Index(fields=["month"], name="demand_monthly_month"),
        ]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} placement {self.placement_id} li {self.line_item_id}"


class RolledMonth(models.Model):
    """A UTC month whose daily rows have been summed into the monthly tables (written in the
    same transaction): reports read it from there, ingest adds a late event to it too."""

    month = models.DateTimeField(unique=True)  # midnight of the first day, UTC
    rolled_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "reporting"

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} rolled at {self.rolled_at:%Y-%m-%d %H:%M}"
