from decimal import Decimal
from typing import Any

import msgspec
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import models

from serving.pctr import CtrModel, decode_model


class HourlyRollupQuerySet(models.QuerySet["HourlyRollup"]):
    def for_user(self, user: AbstractBaseUser | AnonymousUser) -> "HourlyRollupQuerySet":
        """Rows the user may see: all for staff, their organisations' otherwise."""
        if getattr(user, "is_staff", False):
            return self
        from campaigns.organisations import organisations_of

        return self.filter(advertiser_id__in=organisations_of(user).values("pk"))


class HourlyRollup(models.Model):
    """Delivery per placement and line item per hour.

    Ids are plain integers, not foreign keys: billing history outlives the campaigns and
    placements it describes. Line item 0 counts the ad requests that nothing filled.
    """

    hour = models.DateTimeField()
    placement_id = models.PositiveBigIntegerField()
    line_item_id = models.PositiveBigIntegerField()
    campaign_id = models.PositiveBigIntegerField()
    advertiser_id = models.PositiveBigIntegerField()
    requests = models.PositiveBigIntegerField(default=0)
    impressions = models.PositiveBigIntegerField(default=0)
    clicks = models.PositiveBigIntegerField(default=0)
    spend = models.DecimalField(max_digits=18, decimal_places=9, default=Decimal("0"))
    # Creative failures: VAST <Error> calls and HTML render-failure beacons.
    errors = models.PositiveBigIntegerField(default=0)

    objects = HourlyRollupQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "placement_id", "line_item_id"], name="one_rollup_per_hour"
            )
        ]
        indexes = [models.Index(fields=["advertiser_id", "hour"])]
        ordering = ["-hour", "line_item_id"]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} placement {self.placement_id} li {self.line_item_id}"


class StreamWatermark(models.Model):
    """The last event-stream entry rolled up, committed with the rollups it produced.

    Redelivered entries at or below it are skipped, so a crash between the database commit
    and the stream acknowledgement never counts an event twice.
    """

    stream = models.CharField(max_length=200, unique=True)
    last_id = models.CharField(max_length=40, default="0-0")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.stream} @ {self.last_id}"


class HourlyTestTraffic(models.Model):
    """Test traffic (OpenRTB `test = 1`) per placement per hour: counted here, apart from the
    billed rollups, which it never reaches (no spend, no revenue)."""

    hour = models.DateTimeField()
    placement_id = models.PositiveBigIntegerField()
    requests = models.PositiveBigIntegerField(default=0)
    impressions = models.PositiveBigIntegerField(default=0)
    clicks = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["hour", "placement_id"], name="one_test_row")
        ]
        ordering = ["-hour", "placement_id"]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} placement {self.placement_id}: {self.requests} test"


class ConsentHourly(models.Model):
    """Ad requests per hour by what consent allowed: the consent-coverage report's source."""

    hour = models.DateTimeField()
    outcome = models.CharField(max_length=20)  # blocked, contextual, personalised
    reason = models.CharField(max_length=40, blank=True)
    valid_signal = models.BooleanField()  # a valid TC string, GPP string or US Privacy string
    requests = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "outcome", "reason", "valid_signal"], name="one_consent_row"
            )
        ]
        ordering = ["-hour", "outcome"]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} {self.outcome} {self.reason}: {self.requests}"


class DiagnosticQuerySet(models.QuerySet["DeliveryDiagnosticHourly"]):
    def for_user(self, user: AbstractBaseUser | AnonymousUser) -> "DiagnosticQuerySet":
        if getattr(user, "is_staff", False):
            return self
        from campaigns.organisations import organisations_of

        return self.filter(advertiser_id__in=organisations_of(user).values("pk"))


class DeliveryDiagnosticHourly(models.Model):
    """How often a line item was a candidate and turned away, per reason and hour: the
    answer to "why didn't my line deliver" (serving's "loss" events)."""

    hour = models.DateTimeField()
    line_item_id = models.PositiveBigIntegerField()
    campaign_id = models.PositiveBigIntegerField()
    advertiser_id = models.PositiveBigIntegerField()
    reason = models.CharField(max_length=40)
    count = models.PositiveBigIntegerField(default=0)

    objects = DiagnosticQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "line_item_id", "reason"], name="one_diagnostic_row"
            )
        ]
        indexes = [models.Index(fields=["advertiser_id", "hour"])]
        ordering = ["-hour", "line_item_id", "reason"]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} li {self.line_item_id} {self.reason}: {self.count}"


class CreativeHourlyQuerySet(models.QuerySet["CreativeHourly"]):
    def for_user(self, user: AbstractBaseUser | AnonymousUser) -> "CreativeHourlyQuerySet":
        """Rows the user may see: all for staff, their organisations' otherwise."""
        if getattr(user, "is_staff", False):
            return self
        from campaigns.organisations import organisations_of

        return self.filter(advertiser_id__in=organisations_of(user).values("pk"))


class CreativeHourly(models.Model):
    """Delivery per line item and creative per hour: the report's creative table.

    Kept beside `HourlyRollup` rather than in its key so billing's rows stay one per
    placement and line item; the two agree on every total.
    """

    hour = models.DateTimeField()
    line_item_id = models.PositiveBigIntegerField()
    creative_id = models.PositiveBigIntegerField()
    campaign_id = models.PositiveBigIntegerField()
    advertiser_id = models.PositiveBigIntegerField()
    impressions = models.PositiveBigIntegerField(default=0)
    clicks = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0)
    spend = models.DecimalField(max_digits=18, decimal_places=9, default=Decimal("0"))

    objects = CreativeHourlyQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "line_item_id", "creative_id"], name="one_creative_row_per_hour"
            )
        ]
        indexes = [models.Index(fields=["advertiser_id", "hour"])]
        ordering = ["-hour", "line_item_id", "creative_id"]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} li {self.line_item_id} creative {self.creative_id}"


class RequestKeyHourly(models.Model):
    """Ad opportunities per hour by the keys serving's targeting index looks up: placement,
    the slots (sizes and formats) the placement allowed, country, device type and channel.

    Serving counts these per process and key, not per candidate; the report expands them per
    line item ("0 requests matched its countries"). Nothing personal: no user, no IP.
    """

    hour = models.DateTimeField()
    placement_id = models.PositiveBigIntegerField()
    slots = models.CharField(max_length=200)  # comma-separated, in the request's order
    country = models.CharField(max_length=2, blank=True)  # "" when unknown
    device_type = models.PositiveSmallIntegerField(default=0)  # 0 when unknown
    channel = models.CharField(max_length=10, blank=True)
    requests = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "placement_id", "slots", "country", "device_type", "channel"],
                name="one_request_key_row",
            )
        ]
        indexes = [models.Index(fields=["hour"])]
        ordering = ["-hour", "placement_id"]

    def __str__(self) -> str:
        return (
            f"{self.hour:%Y-%m-%d %H:00} pl {self.placement_id} {self.slots} "
            f"{self.country or '-'} {self.device_type} {self.channel or '-'}: {self.requests}"
        )


class BilledKind(models.TextChoices):
    IMPRESSION = "imp", "impression"
    CLICK = "clk", "click"


class BilledDecision(models.Model):
    """An impression or a click the rollups have billed, once per decision and kind.

    Written in the transaction of the rollups it went into; ingestion refuses a second one
    (`reporting.billing`), so a replayed tracking URL bills nothing even when Redis has lost
    its own marks. Kept only while its token could still be billed, then pruned by the
    retention job. Holds no personal data: a server-generated decision id, the kind, a time.
    """

    decision_id = models.CharField(max_length=100)
    kind = models.CharField(max_length=3, choices=BilledKind.choices)
    # When serving recorded the event; pruning counts from it.
    recorded_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["decision_id", "kind"], name="billed_once_per_decision")
        ]
        indexes = [models.Index(fields=["recorded_at"], name="billed_decision_recorded")]

    def __str__(self) -> str:
        return f"{self.kind} {self.decision_id}"


class DemandQuerySet(models.QuerySet[Any]):
    def for_user(self, user: AbstractBaseUser | AnonymousUser) -> "DemandQuerySet":
        """Rows the user may see: all for staff, their organisations' otherwise (external
        demand's rows belong to no organisation: staff only)."""
        if getattr(user, "is_staff", False):
            return self
        from campaigns.organisations import organisations_of

        return self.filter(advertiser_id__in=organisations_of(user).values("pk"))


class DemandCounts(models.Model):
    """The measurement columns `DemandHourly` and `DemandDaily` share."""

    placement_id = models.PositiveBigIntegerField()
    line_item_id = models.PositiveBigIntegerField()
    buyer_id = models.PositiveBigIntegerField()
    currency = models.CharField(max_length=3)
    # The door of the ad request: "v1", "openrtb", "vast" ("" for events from before doors
    # were recorded).
    door = models.CharField(max_length=8, default="")
    campaign_id = models.PositiveBigIntegerField(default=0)
    advertiser_id = models.PositiveBigIntegerField(default=0)
    requests = models.PositiveBigIntegerField(default=0)  # slots asked for
    bids = models.PositiveBigIntegerField(default=0)  # external buyers' valid bids
    wins = models.PositiveBigIntegerField(default=0)  # slots filled
    impressions = models.PositiveBigIntegerField(default=0)
    clicks = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0)
    viewable = models.PositiveBigIntegerField(default=0)
    measurable = models.PositiveBigIntegerField(default=0)
    video_start = models.PositiveBigIntegerField(default=0)
    first_quartile = models.PositiveBigIntegerField(default=0)
    midpoint = models.PositiveBigIntegerField(default=0)
    third_quartile = models.PositiveBigIntegerField(default=0)
    complete = models.PositiveBigIntegerField(default=0)
    skip = models.PositiveBigIntegerField(default=0)
    mute = models.PositiveBigIntegerField(default=0)
    pause = models.PositiveBigIntegerField(default=0)
    spend = models.DecimalField(max_digits=18, decimal_places=9, default=Decimal("0"))

    objects = DemandQuerySet.as_manager()

    class Meta:
        abstract = True


class DemandHourly(DemandCounts):
    """What the measurement reports need per hour x placement x line item x buyer x currency
    x door.

    External demand (buyer_id set, line_item_id 0) gets its own rows, never the unfilled
    row (line item 0, buyer 0). Spend is in `currency` (the campaign's for our line items,
    SERVING_CURRENCY for external demand) and never summed across currencies unconverted.
    Ids are plain integers, as in `HourlyRollup`. Rolled into `DemandDaily` after
    DEMAND_HOURLY_DAYS (reporting.measurement.rollup).
    """

    hour = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "placement_id", "line_item_id", "buyer_id", "currency", "door"],
                name="one_demand_row_per_hour_and_door",
            )
        ]
        indexes = [
            models.Index(fields=["advertiser_id", "hour"], name="demand_adv_hour"),
            models.Index(fields=["hour"], name="demand_hour"),
        ]

    def __str__(self) -> str:
        return (
            f"{self.hour:%Y-%m-%d %H:00} placement {self.placement_id} li {self.line_item_id}"
            f" buyer {self.buyer_id} {self.currency} {self.door or '-'}"
        )


# The conversions package's models, registered with this app.
from reporting.conversions.models import Conversion, ConversionKey  # noqa: E402, F401


class DemandDaily(DemandCounts):
    """`DemandHourly` summed per closed UTC day (`day` is its midnight, UTC), written by the
    roll-up job once the day can receive no more events; the hours are kept beside it for
    DEMAND_HOURLY_DAYS. Reports read whole days from here and the rest from the hours, so a
    year stays a few hundred rows per line item."""

    day = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "placement_id", "line_item_id", "buyer_id", "currency", "door"],
                name="one_demand_row_per_day",
            )
        ]
        indexes = [
            models.Index(fields=["advertiser_id", "day"], name="demand_daily_adv_day"),
            models.Index(fields=["day"], name="demand_daily_day"),
            # Amounts to convert: the days of months in other currencies than the report's
            # are read again, for their spend only; the index has all that read needs (the
            # grouping and scoping columns), so it is read without the table (Postgres).
            models.Index(
                fields=["currency", "day"],
                include=[
                    "spend",
                    "line_item_id",
                    "campaign_id",
                    "advertiser_id",
                    "placement_id",
                    "buyer_id",
                    "door",
                ],
                name="demand_daily_currency_spend",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d} placement {self.placement_id} li {self.line_item_id}"


class LatencyBuckets(models.Model):
    """How many of a buyer's answers fell in one response-time bucket (`serving.latency`)
    over a period: merged over any range by summing, read as p50/p95/p99. Bucket `TIMEOUT`
    counts calls with no answer before the deadline. Platform data (buyers are ad ops'), no
    personal data."""

    buyer_id = models.PositiveBigIntegerField()
    bucket = models.PositiveSmallIntegerField()
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        abstract = True


class BuyerLatencyHourly(LatencyBuckets):
    """`LatencyBuckets` per hour."""

    hour = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "buyer_id", "bucket"], name="one_latency_bucket_per_hour"
            )
        ]
        indexes = [models.Index(fields=["hour"], name="latency_hour")]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} buyer {self.buyer_id} bucket {self.bucket}"


class BuyerLatencyDaily(LatencyBuckets):
    """`BuyerLatencyHourly` summed per closed UTC day (midnight in `day`), as `DemandDaily`."""

    day = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "buyer_id", "bucket"], name="one_latency_bucket_per_day"
            )
        ]
        indexes = [models.Index(fields=["day"], name="latency_day")]

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d} buyer {self.buyer_id} bucket {self.bucket}"


class RolledDay(models.Model):
    """A UTC day whose measurement hours have been summed into the daily tables (written in
    the same transaction): reports read it from there, ingest adds a late event to both."""

    day = models.DateTimeField(unique=True)  # midnight, UTC
    rolled_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d} rolled at {self.rolled_at:%Y-%m-%d %H:%M}"


class ModelStatus(models.TextChoices):
    CANDIDATE = "candidate", "Candidate"
    LIVE = "live", "Live"
    RETIRED = "retired", "Retired"


class ModelKind(models.TextChoices):
    PCTR = "pctr", "Predicted CTR"
    # Conversions per click (reporting.learning.pcvr): target-CPA line items' pCVR.
    PCVR = "pcvr", "Predicted conversion rate"


class ModelVersionQuerySet(models.QuerySet["ModelVersion"]):
    def live(self, kind: str = ModelKind.PCTR) -> "ModelVersionQuerySet":
        """The one live version of `kind` (empty when none is)."""
        return self.filter(kind=kind, status=ModelStatus.LIVE)


class ModelVersion(models.Model):
    """One trained model: what it learnt from, how it evaluated, and whether it is live.

    At most one version of a kind is live; serving scores with it once it is published in
    the snapshot (`reporting.learning.registry`). Rows are kept when retired, so a roll back
    can make an earlier version live again.
    """

    kind = models.CharField(max_length=10, choices=ModelKind.choices, default=ModelKind.PCTR)
    status = models.CharField(
        max_length=10, choices=ModelStatus.choices, default=ModelStatus.CANDIDATE
    )
    feature_set = models.CharField(max_length=40)
    train_start = models.DateTimeField()
    train_end = models.DateTimeField()
    # The held-out later window it was evaluated on.
    holdout_start = models.DateTimeField()
    holdout_end = models.DateTimeField()
    # Training facts and the offline evaluation (reporting.learning.evaluate), JSON.
    metrics = models.JSONField(default=dict)
    # serving.pctr.encode_model: the non-zero weights, compressed.
    weights = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)
    promoted_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)
    # None: promoted by the training job's rule, not by a person.
    promoted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    objects = ModelVersionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind"], condition=models.Q(status="live"), name="one_live_model_per_kind"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} model #{self.pk} ({self.status})"

    def model(self) -> CtrModel:
        """The weights as serving scores with them, numbered by this row."""
        return msgspec.structs.replace(decode_model(bytes(self.weights)), version=self.pk)


# Invalid-traffic models live in their own package; imported here so the app registers them.
from reporting.ivt.models import IvtHourly, IvtRefund, IvtThresholds  # noqa: E402

__all__ = ["IvtHourly", "IvtRefund", "IvtThresholds"]

# The measurement rollups' monthly tier, in its package.
from reporting.measurement.models import (  # noqa: E402
    CreativeErrorHourly,
    DemandMonthly,
    GeoDeviceDaily,
    GeoDeviceHourly,
    RolledMonth,
)

__all__ += [
    "CreativeErrorHourly", "DemandMonthly", "GeoDeviceDaily", "GeoDeviceHourly", "RolledMonth",
]  # fmt: skip
