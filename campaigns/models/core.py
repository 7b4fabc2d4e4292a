import secrets
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from campaigns import validators as v

POSITIVE = [MinValueValidator(Decimal("0.0001"))]
NON_NEGATIVE = [MinValueValidator(Decimal("0"))]


def generate_placement_key() -> str:
    return f"pk_{secrets.token_urlsafe(24)}"


def _money(label: str, null: bool = False, **kwargs: Any) -> "models.DecimalField[Any, Any]":
    return models.DecimalField(
        label, max_digits=14, decimal_places=4, null=null, blank=null, **kwargs
    )


class Advertiser(models.Model):
    """An advertiser organisation: every campaign object belongs to exactly one."""

    name = models.CharField(max_length=200, unique=True)
    time_zone = models.CharField(max_length=64, default="UTC", validators=[v.validate_time_zone])
    currency = models.CharField(max_length=3, default="USD", validators=[v.validate_currency])
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"  # everything, members and billing settings
    MANAGER = "manager", "Manager"  # campaigns and creatives
    ANALYST = "analyst", "Analyst"  # read-only, reports


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    advertiser = models.ForeignKey(Advertiser, on_delete=models.CASCADE, related_name="members")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.MANAGER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "advertiser"], name="one_membership_per_org")
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.advertiser} ({self.role})"


class OrgQuerySet(models.QuerySet[Any]):
    """Rows of the organisations a user belongs to; all rows for staff."""

    org_path = "advertiser"

    def for_user(self, user: AbstractBaseUser | AnonymousUser) -> Any:
        if getattr(user, "is_staff", False):
            return self
        if not user.is_authenticated:
            return self.none()
        return self.filter(**{f"{self.org_path}__members__user_id": int(user.pk)})


class Publisher(models.Model):
    name = models.CharField(max_length=200, unique=True)
    domain = models.CharField(max_length=253, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Placement(models.Model):
    publisher = models.ForeignKey(Publisher, on_delete=models.CASCADE, related_name="placements")
    name = models.CharField(max_length=200)
    # The secret a page or device sends with every ad request; it identifies the placement.
    key = models.CharField(max_length=64, unique=True, default=generate_placement_key)
    sizes = models.JSONField(default=list, validators=[v.validate_sizes])
    floor_cpm = models.DecimalField(
        "floor CPM", max_digits=10, decimal_places=4, default=Decimal("0"), validators=NON_NEGATIVE
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.publisher} / {self.name}"


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    ARCHIVED = "archived", "Archived"  # final: never comes back


class PacingMode(models.TextChoices):
    EVEN = "even", "Even"
    FRONTLOADED = "frontloaded", "Frontloaded"
    ASAP = "asap", "As soon as possible"


class PriorityTier(models.TextChoices):
    # Serving order: sponsorship beats guaranteed beats price beats house.
    SPONSORSHIP = "sponsorship", "Sponsorship"
    GUARANTEED = "guaranteed", "Guaranteed"
    PRICE = "price", "Price"
    HOUSE = "house", "House"


class GoalType(models.TextChoices):
    NONE = "", "No goal"
    IMPRESSIONS = "impressions", "Impressions"
    CLICKS = "clicks", "Clicks"
    SPEND = "spend", "Spend"
    # Optimise toward conversions (reporting/conversions): the target is a cost per
    # conversion in the campaign currency, or a return on ad spend as a ratio (4 = 400 %).
    TARGET_CPA = "target_cpa", "Target CPA"
    TARGET_ROAS = "target_roas", "Target ROAS"


# Conversion goals: they need conversions to be attributable to the campaign.
CONVERSION_GOALS = frozenset({GoalType.TARGET_CPA, GoalType.TARGET_ROAS})
# Attribution windows (docs/conversions.md): the longest a click or a view may count for.
MAX_POST_CLICK_DAYS = 90
MAX_POST_VIEW_DAYS = 30
MAX_TARGET_ROAS = Decimal(1000)


class CampaignQuerySet(OrgQuerySet):
    def live(self, now: datetime) -> "CampaignQuerySet":
        """Active campaigns whose flight includes `now`."""
        return self.filter(status=CampaignStatus.ACTIVE, start_at__lte=now).filter(
            models.Q(end_at__isnull=True) | models.Q(end_at__gt=now)
        )


class Campaign(models.Model):
    advertiser = models.ForeignKey(Advertiser, on_delete=models.PROTECT, related_name="campaigns")
    name = models.CharField(max_length=200)
    status = models.CharField(
        max_length=20, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT
    )
    # Stored in UTC; shown and entered in the advertiser's time zone.
    start_at = models.DateTimeField()
    end_at = models.DateTimeField(null=True, blank=True)
    currency = models.CharField(max_length=3, default="USD", validators=[v.validate_currency])
    daily_budget = _money("daily budget", validators=POSITIVE)
    lifetime_budget = _money("lifetime budget", null=True, validators=POSITIVE)
    pacing_mode = models.CharField(
        max_length=20, choices=PacingMode.choices, default=PacingMode.EVEN
    )
    priority_tier = models.CharField(
        max_length=20, choices=PriorityTier.choices, default=PriorityTier.PRICE
    )
    goal_type = models.CharField(
        max_length=20, choices=GoalType.choices, default=GoalType.NONE, blank=True
    )
    goal_target = _money("goal target", null=True, validators=POSITIVE)
    # Last-touch attribution windows of conversions (reporting/conversions); 0 turns one off.
    post_click_days = models.PositiveSmallIntegerField(
        "post-click window (days)", default=30, validators=[MaxValueValidator(MAX_POST_CLICK_DAYS)],
        help_text="A conversion this many days after a click on the campaign's ad counts for it.",
    )  # fmt: skip
    post_view_days = models.PositiveSmallIntegerField(
        "post-view window (days)", default=1, validators=[MaxValueValidator(MAX_POST_VIEW_DAYS)],
        help_text="A conversion this many days after an impression (no click) counts for it, "
        "where consent allowed a pseudonymous id.",
    )  # fmt: skip
    # Bumped on every change: the API's ETag, so concurrent editors cannot overwrite silently.
    version = models.PositiveIntegerField(default=1, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CampaignQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["advertiser", "status"])]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.end_at and self.start_at and self.end_at <= self.start_at:
            errors["end_at"] = "The end must be after the start."
        if (
            self.lifetime_budget is not None
            and self.daily_budget is not None
            and self.daily_budget > self.lifetime_budget
        ):
            errors["daily_budget"] = "The daily budget cannot exceed the lifetime budget."
        if self.goal_type and self.goal_target is None:
            errors["goal_target"] = f"A {self.goal_type} goal needs a target."
        if not self.goal_type and self.goal_target is not None:
            errors["goal_type"] = "Choose what the goal target counts."
        if self.goal_type in CONVERSION_GOALS and not (self.post_click_days or self.post_view_days):
            errors["goal_type"] = (
                f"A {self.goal_type} goal needs conversions: set a post-click or post-view window."
            )
        if (
            self.goal_type == GoalType.TARGET_ROAS
            and self.goal_target is not None
            and self.goal_target > MAX_TARGET_ROAS
        ):
            errors["goal_target"] = (
                f"A target ROAS is a ratio of conversion value to spend (4 = 400 %), at most "
                f"{MAX_TARGET_ROAS}."
            )
        if errors:
            raise ValidationError(errors)


class DealQuerySet(OrgQuerySet):
    pass


class Deal(models.Model):
    """A private-marketplace deal: a deal id a buyer targets, with a floor or a fixed price."""

    advertiser = models.ForeignKey(Advertiser, on_delete=models.CASCADE, related_name="deals")
    deal_id = models.CharField("deal id", max_length=100)
    name = models.CharField(max_length=200)
    floor = _money("floor CPM", validators=NON_NEGATIVE, default=Decimal("0"))
    fixed_price = _money(
        "fixed price CPM", null=True, validators=POSITIVE,
        help_text="Set for a fixed-price deal (OpenRTB at=3); leave empty for an auction.",
    )  # fmt: skip
    currency = models.CharField(max_length=3, default="USD", validators=[v.validate_currency])
    version = models.PositiveIntegerField(default=1, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = DealQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["advertiser", "deal_id"], name="deal_id_per_org")
        ]
        ordering = ["deal_id"]

    def __str__(self) -> str:
        return f"{self.deal_id} ({self.name})"

    def clean(self) -> None:
        if self.fixed_price is not None and self.fixed_price < self.floor:
            raise ValidationError({"fixed_price": "A fixed price cannot be below the floor."})


class BidType(models.TextChoices):
    CPM = "cpm", "CPM"
    CPC = "cpc", "CPC"


class BidStrategy(models.TextChoices):
    FIXED = "fixed", "Fixed"
    # Lowers the bid toward min_bid when ahead of schedule; never raises it above `bid`.
    DYNAMIC_DOWN = "dynamic_down", "Dynamic, down only"


class CreativeRotation(models.TextChoices):
    WEIGHTED = "weighted", "Weighted (fixed weights)"
    # Thompson sampling on each creative's clicks and impressions (docs/learning.md).
    OPTIMISE = "optimise", "Optimise (Thompson sampling)"


class LineItemStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    ARCHIVED = "archived", "Archived"


class LineItemQuerySet(OrgQuerySet):
    org_path = "campaign__advertiser"


def _list_field(validator: Any, help_text: str = "") -> "models.JSONField[Any, Any]":
    return models.JSONField(default=list, blank=True, validators=[validator], help_text=help_text)


class LineItem(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="line_items")
    name = models.CharField(max_length=200)
    status = models.CharField(
        max_length=20, choices=LineItemStatus.choices, default=LineItemStatus.ACTIVE
    )
    bid_type = models.CharField(max_length=3, choices=BidType.choices, default=BidType.CPM)
    bid = models.DecimalField(
        max_digits=10,
        decimal_places=4,
        validators=POSITIVE,
        help_text="Per thousand impressions (CPM) or per click (CPC), in the campaign currency.",
    )
    bid_strategy = models.CharField(
        max_length=20, choices=BidStrategy.choices, default=BidStrategy.FIXED
    )
    min_bid = models.DecimalField(
        max_digits=10, decimal_places=4, null=True, blank=True, validators=POSITIVE,
        help_text="The floor a dynamic strategy may lower the bid to.",
    )  # fmt: skip
    daily_budget = _money("daily budget", null=True, validators=POSITIVE)
    lifetime_budget = _money("lifetime budget", null=True, validators=POSITIVE)
    creative_rotation = models.CharField(
        max_length=10, choices=CreativeRotation.choices, default=CreativeRotation.WEIGHTED,
        help_text="Weighted: each creative in proportion to its weight. Optimise: more often "
        "the creatives clicked more, with a share kept for exploration.",
    )  # fmt: skip
    frequency_caps = _list_field(v.validate_frequency_caps, 'e.g. [{"count": 3, "period": "day"}]')
    click_url = models.URLField(max_length=2000, blank=True, help_text="Required for CPC.")
    # Targeting; an empty list means "any".
    sizes = models.JSONField(
        default=list, validators=[v.validate_sizes], help_text='e.g. ["300x250"]'
    )
    placements = models.ManyToManyField(Placement, blank=True, related_name="line_items")
    countries = _list_field(v.validate_countries, 'ISO 3166-1 alpha-2, e.g. ["US", "DE"]')
    regions = _list_field(v.validate_regions, 'ISO 3166-2, e.g. ["US-CA"]')
    device_types = _list_field(v.validate_device_types, "OpenRTB device types 1-8")
    channels = _list_field(v.validate_channels, "web, app, ctv, voice, dooh")
    properties = _list_field(v.validate_strings, 'Named properties, e.g. ["Fire TV"]')
    dayparts = _list_field(
        v.validate_dayparts, 'In the advertiser time zone: [{"days": [0], "start": "07:00", '
        '"end": "10:00"}]'
    )  # fmt: skip
    keywords = _list_field(v.validate_strings)
    negative_keywords = _list_field(v.validate_strings)
    segments = _list_field(v.validate_strings, "Audience segment ids")
    categories = _list_field(v.validate_categories, 'IAB content taxonomy, e.g. ["IAB7"]')
    child_safe = models.BooleanField(default=False, help_text="May serve to COPPA traffic.")
    creatives = models.ManyToManyField(
        "creatives.Creative", through="LineItemCreative", blank=True, related_name="line_items"
    )
    deals = models.ManyToManyField(Deal, blank=True, related_name="line_items")
    version = models.PositiveIntegerField(default=1, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = LineItemQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.bid_type == BidType.CPC and not self.click_url:
            errors["click_url"] = "A CPC line item needs a click URL."
        if self.bid_strategy == BidStrategy.DYNAMIC_DOWN:
            if self.min_bid is None:
                errors["min_bid"] = "A dynamic strategy needs a minimum bid."
            elif self.bid is not None and self.min_bid >= self.bid:
                errors["min_bid"] = "The minimum bid must be below the bid."
        if (
            self.daily_budget is not None
            and self.lifetime_budget is not None
            and self.daily_budget > self.lifetime_budget
        ):
            errors["daily_budget"] = "The daily budget cannot exceed the lifetime budget."
        if errors:
            raise ValidationError(errors)


class LineItemCreativeQuerySet(OrgQuerySet):
    org_path = "line_item__campaign__advertiser"


class LineItemCreative(models.Model):
    """A creative assigned to a line item, shown in proportion to its weight."""

    line_item = models.ForeignKey(LineItem, on_delete=models.CASCADE, related_name="assignments")
    creative = models.ForeignKey(
        "creatives.Creative", on_delete=models.CASCADE, related_name="assignments"
    )
    weight = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)])

    objects = LineItemCreativeQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["line_item", "creative"], name="assign_creative_once")
        ]

    def __str__(self) -> str:
        return f"{self.creative} on {self.line_item} (weight {self.weight})"

    def clean(self) -> None:
        if (
            self.line_item_id
            and self.creative_id
            and self.creative.advertiser_id != self.line_item.campaign.advertiser_id
        ):
            raise ValidationError({"creative": "The creative belongs to another organisation."})
