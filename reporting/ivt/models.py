from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone


class IvtReason(models.TextChoices):
    CRAWLER = "crawler", "Listed crawler or bot"
    DATACENTER = "datacenter", "Data-center address"
    PREFETCH = "prefetch", "Pre-fetch or link scanner"
    FAST_CLICK = "fast_click", "Click too soon after its impression"
    CLICK_WITHOUT_IMPRESSION = "click_without_impression", "Click without an impression"
    ID_RATE = "id_rate", "Pseudonymous id over its rate"
    IP_RATE = "ip_rate", "Address over its rate"
    NETWORK_CHANGED = "network_changed", "Impression from another network (flag)"
    CTR_OUTLIER = "ctr_outlier", "Placement CTR far above its norm (flag)"
    PIXEL_STUFFING = "pixel_stuffing", "Impression measured in a box too small to be seen"
    REFUND = "refund", "Refunded by staff"


class IvtHourlyQuerySet(models.QuerySet["IvtHourly"]):
    def for_user(self, user: AbstractBaseUser | AnonymousUser) -> "IvtHourlyQuerySet":
        """Rows the user may see: all for staff, their organisations' otherwise."""
        if getattr(user, "is_staff", False):
            return self
        from campaigns.organisations import organisations_of

        return self.filter(advertiser_id__in=organisations_of(user).values("pk"))


class IvtHourly(models.Model):
    """Invalid (never billed) and flagged impressions and clicks per hour, placement, line
    item and reason; `withheld` is what they would have cost. Ids are plain integers, as in
    every rollup: billing history outlives what it describes."""

    hour = models.DateTimeField()
    placement_id = models.PositiveBigIntegerField()
    line_item_id = models.PositiveBigIntegerField()
    campaign_id = models.PositiveBigIntegerField()
    advertiser_id = models.PositiveBigIntegerField()
    reason = models.CharField(max_length=32, choices=IvtReason.choices)
    # Invalid: recorded, not billed. Flagged: billed, marked for review (a flag reason).
    impressions = models.PositiveBigIntegerField(default=0)
    clicks = models.PositiveBigIntegerField(default=0)
    flagged_impressions = models.PositiveBigIntegerField(default=0)
    flagged_clicks = models.PositiveBigIntegerField(default=0)
    withheld = models.DecimalField(max_digits=18, decimal_places=9, default=Decimal("0"))
    currency = models.CharField(max_length=3)

    objects = IvtHourlyQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "placement_id", "line_item_id", "reason", "currency"],
                name="one_ivt_row",
            )
        ]
        indexes = [models.Index(fields=["advertiser_id", "hour"]), models.Index(fields=["hour"])]
        ordering = ["-hour", "placement_id", "line_item_id", "reason"]
        verbose_name = "invalid traffic (hourly)"
        verbose_name_plural = "invalid traffic (hourly)"

    def __str__(self) -> str:
        where = f"placement {self.placement_id} li {self.line_item_id}"
        return f"{self.hour:%Y-%m-%d %H:00} {where} {self.reason}"


class IvtThresholds(models.Model):
    """The invalid-traffic thresholds in force: one row, made from settings.IVT_RULES when
    first asked for (`reporting.ivt.services.current_thresholds`); saving it in admin
    publishes it to serving (`reporting.ivt.services.publish_thresholds`)."""

    enabled = models.BooleanField()
    datacenter_action = models.CharField(
        max_length=8,
        choices=[("no_ad", "No ad"), ("house", "House ads only")],
    )
    min_click_ms = models.PositiveIntegerField()
    id_imps_per_minute = models.PositiveIntegerField()
    id_imps_per_hour = models.PositiveIntegerField()
    id_clicks_per_minute = models.PositiveIntegerField()
    id_clicks_per_hour = models.PositiveIntegerField()
    id_hold_seconds = models.PositiveIntegerField(default=3600)
    min_render_px = models.PositiveIntegerField(default=10)
    ip_imps_per_minute = models.PositiveIntegerField()
    ip_imps_per_hour = models.PositiveIntegerField()
    ip_clicks_per_minute = models.PositiveIntegerField()
    ip_clicks_per_hour = models.PositiveIntegerField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "invalid-traffic thresholds"
        verbose_name_plural = "invalid-traffic thresholds"

    def __str__(self) -> str:
        return "Invalid-traffic thresholds"

    def as_rules(self) -> dict[str, Any]:
        """The values as serving's `IvtRules` takes them."""
        return {name: getattr(self, name) for name in settings.IVT_RULES}


class RefundScope(models.TextChoices):
    PLACEMENT = "placement", "A placement's events"
    PSEUDONYM = "pseudonym", "A pseudonymous id's events"


class RefundStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class IvtRefund(models.Model):
    """Staff invalidating billed events after the fact (`reporting.ivt.refunds`)."""

    scope = models.CharField(max_length=10, choices=RefundScope.choices)
    placement_id = models.PositiveBigIntegerField(null=True, blank=True)
    pseudonym = models.CharField(max_length=32, blank=True)
    start = models.DateTimeField()
    end = models.DateTimeField()
    note = models.CharField(max_length=200, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    status = models.CharField(
        max_length=8, choices=RefundStatus.choices, default=RefundStatus.PENDING
    )
    impressions = models.PositiveBigIntegerField(default=0)
    clicks = models.PositiveBigIntegerField(default=0)
    refunded = models.DecimalField(max_digits=18, decimal_places=9, default=Decimal("0"))
    error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "invalid-traffic refund"

    def __str__(self) -> str:
        what = f"placement {self.placement_id}" if self.placement_id else "a pseudonym"
        return f"Refund of {what}, {self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M}"

    def clean(self) -> None:
        errors = {}
        if self.scope == RefundScope.PLACEMENT and not self.placement_id:
            errors["placement_id"] = "A placement refund needs the placement."
        if self.scope == RefundScope.PSEUDONYM and not self.pseudonym:
            errors["pseudonym"] = "A pseudonym refund needs the pseudonymous id."
        if self.start and self.end:
            if self.end <= self.start:
                errors["end"] = "The window must end after it starts."
            elif self.end > timezone.now():
                errors["end"] = "The window cannot end in the future."
        if errors:
            raise ValidationError(errors)
