"""The conversions store and the advertisers' postback keys."""

import secrets
from decimal import Decimal

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import models


class Attribution(models.TextChoices):
    CLICK = "click", "Post-click"
    VIEW = "view", "Post-view"
    NONE = "none", "Not attributed"


class Source(models.TextChoices):
    PIXEL = "pixel", "Pixel"
    POSTBACK = "postback", "Postback"


class ConversionQuerySet(models.QuerySet["Conversion"]):
    def for_user(self, user: AbstractBaseUser | AnonymousUser) -> "ConversionQuerySet":
        """Rows the user may see: all for staff, their organisations' otherwise."""
        if getattr(user, "is_staff", False):
            return self
        from campaigns.organisations import organisations_of

        return self.filter(advertiser_id__in=organisations_of(user).values("pk"))

    def attributed(self) -> "ConversionQuerySet":
        """Conversions credited to one of our decisions (by click or by view)."""
        return self.exclude(attribution=Attribution.NONE)


class Conversion(models.Model):
    """One conversion an advertiser reported, and the decision it was attributed to.

    Ids are plain integers, as in the rollups: a conversion outlives the campaign it credits.
    A conversion with an order id counts once per advertiser (the constraint); the value is
    kept as sent and, once attributed, converted into the campaign's currency at the rate of
    that moment (`attributed_value`), so reports never add two currencies together.
    """

    advertiser_id = models.PositiveBigIntegerField()
    event = models.CharField(max_length=40)
    value = models.DecimalField(max_digits=19, decimal_places=6, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    order_id = models.CharField(max_length=100, blank=True)
    converted_at = models.DateTimeField()
    source = models.CharField(max_length=10, choices=Source.choices)
    attribution = models.CharField(max_length=5, choices=Attribution.choices)
    # The touch credited (0 / "" / null when none): the decision, its line item and campaign.
    decision_id = models.CharField(max_length=100, blank=True)
    campaign_id = models.PositiveBigIntegerField(default=0)
    line_item_id = models.PositiveBigIntegerField(default=0)
    creative_id = models.PositiveBigIntegerField(default=0)
    placement_id = models.PositiveBigIntegerField(default=0)
    touched_at = models.DateTimeField(null=True, blank=True)
    # The value in the campaign's currency; null when unattributed, valueless or the FX table
    # has no rate for the currency.
    attributed_value = models.DecimalField(max_digits=19, decimal_places=6, null=True, blank=True)
    # The keyed-hash pseudonym the conversion came with, where consent allowed an id: the
    # only personal datum here, covered by data-subject requests and retention.
    pseudonym = models.CharField(max_length=32, blank=True)
    stream_id = models.CharField(max_length=40)
    recorded_at = models.DateTimeField(auto_now_add=True)

    objects = ConversionQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["advertiser_id", "order_id"],
                condition=~models.Q(order_id=""),
                name="one_conversion_per_order",
            )
        ]
        indexes = [
            models.Index(fields=["campaign_id", "converted_at"], name="conversion_campaign_time"),
            models.Index(fields=["advertiser_id", "converted_at"], name="conversion_adv_time"),
            models.Index(fields=["pseudonym"], name="conversion_pseudonym"),
            models.Index(fields=["recorded_at"], name="conversion_recorded"),
        ]
        ordering = ["-converted_at"]

    def __str__(self) -> str:
        return f"{self.event} {self.order_id or '-'} ({self.attribution})"

    @property
    def has_value(self) -> bool:
        return self.value is not None and self.value > Decimal(0)


def generate_key_id() -> str:
    return f"ck_{secrets.token_urlsafe(12)}"


def generate_secret() -> str:
    return secrets.token_urlsafe(32)


class ConversionKeyQuerySet(models.QuerySet["ConversionKey"]):
    def active(self) -> "ConversionKeyQuerySet":
        return self.filter(revoked_at__isnull=True)


class ConversionKey(models.Model):
    """An advertiser's key for the server-to-server postback (docs/conversions.md).

    The key id is public (it names the key in every request); the secret signs requests
    (HMAC-SHA256) or is sent as a bearer key. It is kept in the clear because checking an
    HMAC needs it, shown to staff only when the key is made, and revoked rather than deleted.
    """

    advertiser = models.ForeignKey(
        "campaigns.Advertiser", on_delete=models.CASCADE, related_name="conversion_keys"
    )
    name = models.CharField(max_length=100)
    key_id = models.CharField(max_length=40, unique=True, default=generate_key_id, editable=False)
    secret = models.CharField(max_length=64, default=generate_secret, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ConversionKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.key_id})"
