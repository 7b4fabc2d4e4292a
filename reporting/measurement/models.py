"""The measurement rollups' monthly tier: `DemandDaily` summed per closed UTC month, so that a
report over a year reads about twelve rows per key instead of 365.

Registered with the reporting app (imported by `reporting.models`).
"""

from decimal import Decimal

from django.db import models

from reporting.models import DemandCounts, DemandQuerySet


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


class GeoDeviceCounts(models.Model):
    """Delivery by the request's country and device type per line item (line item 0: ad
    requests nothing of ours filled, external demand's included) and currency: the reports
    by country and device. Counts only: a country and an OpenRTB device type are as coarse
    as the targeting, nothing personal."""

    line_item_id = models.PositiveBigIntegerField()
    campaign_id = models.PositiveBigIntegerField(default=0)
    advertiser_id = models.PositiveBigIntegerField(default=0)
    country = models.CharField(max_length=2, blank=True)  # "" unknown
    device_type = models.PositiveSmallIntegerField(default=0)  # 0 unknown
    currency = models.CharField(max_length=3)
    requests = models.PositiveBigIntegerField(default=0)
    wins = models.PositiveBigIntegerField(default=0)
    impressions = models.PositiveBigIntegerField(default=0)
    clicks = models.PositiveBigIntegerField(default=0)
    spend = models.DecimalField(max_digits=18, decimal_places=9, default=Decimal("0"))

    objects = DemandQuerySet.as_manager()

    class Meta:
        abstract = True


GEO_KEY = ("line_item_id", "country", "device_type", "currency")


class GeoDeviceHourly(GeoDeviceCounts):
    """`GeoDeviceCounts` per hour, written by ingest with the other rollups (same watermark);
    pruned after DEMAND_HOURLY_DAYS like `DemandHourly`, once rolled into its day."""

    hour = models.DateTimeField()

    class Meta:
        app_label = "reporting"
        constraints = [
            models.UniqueConstraint(fields=["hour", *GEO_KEY], name="one_geo_row_per_hour")
        ]
        indexes = [
            models.Index(fields=["advertiser_id", "hour"], name="geo_adv_hour"),
            models.Index(fields=["hour"], name="geo_hour"),
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} li {self.line_item_id} {self.country}{self.device_type}"


class GeoDeviceDaily(GeoDeviceCounts):
    """`GeoDeviceHourly` summed per closed UTC day, with `DemandDaily` (same `RolledDay`)."""

    day = models.DateTimeField()

    class Meta:
        app_label = "reporting"
        constraints = [
            models.UniqueConstraint(fields=["day", *GEO_KEY], name="one_geo_row_per_day")
        ]
        indexes = [
            models.Index(fields=["advertiser_id", "day"], name="geo_adv_day"),
            models.Index(fields=["day"], name="geo_day"),
            models.Index(fields=["currency", "day"], name="geo_currency_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d} li {self.line_item_id} {self.country} {self.device_type}"


class CreativeErrorHourly(models.Model):
    """Creative failures per hour, line item, creative and error code: VAST <Error> calls
    with their [ERRORCODE] and HTML render-failure beacons (which use the VAST codes of the
    same meaning, `creatives.placeholders`). Beside `CreativeHourly` (whose impressions are
    the rates' denominator), kept as long as it. No personal data."""

    hour = models.DateTimeField()
    line_item_id = models.PositiveBigIntegerField()
    creative_id = models.PositiveBigIntegerField()
    campaign_id = models.PositiveBigIntegerField(default=0)
    advertiser_id = models.PositiveBigIntegerField(default=0)
    code = models.CharField(max_length=32, blank=True)  # "" when the player sent none
    errors = models.PositiveBigIntegerField(default=0)

    objects = DemandQuerySet.as_manager()

    class Meta:
        app_label = "reporting"
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "line_item_id", "creative_id", "code"],
                name="one_creative_error_row",
            )
        ]
        indexes = [
            models.Index(fields=["advertiser_id", "hour"], name="creative_error_adv_hour"),
            models.Index(fields=["hour"], name="creative_error_hour"),
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} creative {self.creative_id} code {self.code}"
