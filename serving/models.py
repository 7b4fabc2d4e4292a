"""External OpenRTB buyers, configured by ad ops in Django admin.

Serving never reads these rows: a committed change republishes the snapshot
(`serving.signals`), which carries the enabled buyers as `BuyerSnap`s
(`serving.buyer_snapshot`), and the serving processes call them from there.
"""

from django.core.validators import MaxValueValidator, MinValueValidator, URLValidator
from django.db import models

from campaigns.validators import validate_currency
from serving.snapshot import BuyerSnap

MIN_TIMEOUT_MS = 10
MAX_TIMEOUT_MS = 2000


class BuyerQuerySet(models.QuerySet["Buyer"]):
    def enabled(self) -> "BuyerQuerySet":
        """Buyers serving may call."""
        return self.filter(enabled=True)


class Buyer(models.Model):
    """A demand partner called over OpenRTB 2.6 for every eligible ad request."""

    name = models.CharField(max_length=100, unique=True)
    # URLField also accepts ftp; a bid request only travels over HTTP.
    endpoint = models.URLField(
        max_length=500,
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="Where bid requests are POSTed (http or https).",
    )
    gvl_vendor_id = models.PositiveIntegerField(
        "GVL vendor id",
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="The buyer's id in the IAB Global Vendor List. Without it the buyer is "
        "never called on GDPR traffic.",
    )
    timeout_ms = models.PositiveIntegerField(
        "timeout (ms)",
        default=150,
        validators=[MinValueValidator(MIN_TIMEOUT_MS), MaxValueValidator(MAX_TIMEOUT_MS)],
        help_text="The longest we wait for its answer; less when the request's own deadline "
        "is nearer.",
    )
    enabled = models.BooleanField(default=True)
    qps_cap = models.PositiveIntegerField(
        "QPS cap",
        default=0,
        help_text="Bid requests per second from all serving processes together; 0 means no cap.",
    )
    currency = models.CharField(
        max_length=3,
        default="USD",
        validators=[validate_currency],
        help_text="The ISO 4217 currency it bids in; bids in any other are dropped.",
    )
    supports_coppa = models.BooleanField(
        "supports COPPA",
        default=False,
        help_text="May receive requests from child-directed traffic (regs.coppa = 1).",
    )
    # User sync (serving.sync, docs/privacy.md): where /v1/sync sends the browser, and the
    # placeholder the buyer replaces with its own user id in our return URL.
    sync_url = models.URLField(
        "user sync URL",
        max_length=1000,
        blank=True,
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="The buyer's sync endpoint, with ${GDPR}, ${GDPR_CONSENT}, ${US_PRIVACY}, "
        "${GPP}, ${GPP_SID} and ${REDIRECT} (our return URL, URL-encoded) where it wants "
        "them. Empty: no user sync.",
    )
    sync_uid_macro = models.CharField(
        "user id macro",
        max_length=32,
        default="$UID",
        help_text="What the buyer replaces with its user id in our return URL.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = BuyerQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(timeout_ms__gte=MIN_TIMEOUT_MS)
                & models.Q(timeout_ms__lte=MAX_TIMEOUT_MS),
                name="buyer_timeout_range",
            ),
            models.CheckConstraint(
                condition=models.Q(gvl_vendor_id__isnull=True) | models.Q(gvl_vendor_id__gte=1),
                name="buyer_gvl_vendor_id_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        # pycountry matches codes in any case; OpenRTB and the FX table use upper case.
        self.currency = (self.currency or "").upper()

    def to_snap(self) -> BuyerSnap:
        return BuyerSnap(
            id=self.pk,
            name=self.name,
            endpoint=self.endpoint,
            gvl_vendor_id=self.gvl_vendor_id,
            timeout_ms=self.timeout_ms,
            qps_cap=self.qps_cap,
            currency=self.currency,
            supports_coppa=self.supports_coppa,
            sync_url=self.sync_url,
            sync_uid_macro=self.sync_uid_macro,
        )
