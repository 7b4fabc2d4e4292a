import re
import secrets
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models

SIZE_RE = re.compile(r"^[1-9][0-9]{0,3}x[1-9][0-9]{0,3}$")


def validate_sizes(value: object) -> None:
    """Sizes are a list of "WIDTHxHEIGHT" strings such as "300x250"."""
    if not isinstance(value, list) or not value:
        raise ValidationError("Give at least one size, like 300x250.")
    bad = [s for s in value if not isinstance(s, str) or not SIZE_RE.match(s)]
    if bad:
        raise ValidationError(f"Sizes must look like 300x250; not {', '.join(map(str, bad))}.")


def generate_placement_key() -> str:
    return f"pk_{secrets.token_urlsafe(24)}"


class Advertiser(models.Model):
    name = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    MANAGER = "manager", "Manager"
    ANALYST = "analyst", "Analyst"


class Membership(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    advertiser = models.ForeignKey(Advertiser, on_delete=models.CASCADE, related_name="members")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.MANAGER)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "advertiser"], name="one_membership_per_org")
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.advertiser} ({self.role})"


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    ARCHIVED = "archived", "Archived"


class CampaignQuerySet(models.QuerySet["Campaign"]):
    def live(self, now: datetime) -> "CampaignQuerySet":
        """Active campaigns whose flight includes `now`."""
        return self.filter(status=CampaignStatus.ACTIVE, start_at__lte=now).filter(
            models.Q(end_at__isnull=True) | models.Q(end_at__gt=now)
        )

    def for_user(self, user: AbstractBaseUser | AnonymousUser) -> "CampaignQuerySet":
        """Campaigns the user may see: all for staff, their organisations' otherwise."""
        if getattr(user, "is_staff", False):
            return self
        if not user.is_authenticated:
            return self.none()
        return self.filter(advertiser__members__user_id=int(user.pk))


class Campaign(models.Model):
    advertiser = models.ForeignKey(Advertiser, on_delete=models.PROTECT, related_name="campaigns")
    name = models.CharField(max_length=200)
    status = models.CharField(
        max_length=20, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT
    )
    start_at = models.DateTimeField()
    end_at = models.DateTimeField(null=True, blank=True)
    daily_budget = models.DecimalField(
        max_digits=12, decimal_places=2, validators=[MinValueValidator(Decimal("0.01"))]
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CampaignQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.end_at and self.start_at and self.end_at <= self.start_at:
            raise ValidationError({"end_at": "The end must be after the start."})


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
    sizes = models.JSONField(default=list, validators=[validate_sizes])
    floor_cpm = models.DecimalField(
        "floor CPM",
        max_digits=10,
        decimal_places=4,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0"))],
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.publisher} / {self.name}"


class LineItemStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"


class LineItem(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="line_items")
    name = models.CharField(max_length=200)
    status = models.CharField(
        max_length=20, choices=LineItemStatus.choices, default=LineItemStatus.ACTIVE
    )
    cpm_bid = models.DecimalField(
        "CPM bid",
        max_digits=10,
        decimal_places=4,
        validators=[MinValueValidator(Decimal("0.0001"))],
        help_text="Price per thousand impressions, in the campaign currency.",
    )
    sizes = models.JSONField(
        default=list, validators=[validate_sizes], help_text='Slot sizes, e.g. ["300x250"].'
    )
    placements = models.ManyToManyField(
        Placement,
        blank=True,
        related_name="line_items",
        help_text="Leave empty to run on every placement.",
    )
    creatives = models.ManyToManyField("creatives.Creative", blank=True, related_name="line_items")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name
