"""Creatives (image, HTML5, video, audio, native), their media renditions, and the domains an
advertiser has proven it owns.

A creative serves only once approved: `Creative.objects.servable()`. Writes that change what
serves go through `creatives.services`, which validates, stores the files, runs the
automatic checks and sends an edited creative back to review.
"""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxLengthValidator, MinValueValidator
from django.db import models

from campaigns.models.core import OrgQuerySet
from campaigns.validators import validate_categories
from creatives import validation
from creatives.files import PREFIX, HashedFieldFile, HashedImageFieldFile, creative_storage


def creative_upload_to(instance: models.Model, filename: str) -> str:
    # `filename` is already the content hash (see creatives.files).
    return f"{PREFIX}/{filename}"


class HashedFileField(models.FileField):
    attr_class = HashedFieldFile


class HashedImageField(models.ImageField):
    attr_class = HashedImageFieldFile


class CreativeKind(models.TextChoices):
    IMAGE = "image", "Image"
    HTML5 = "html5", "HTML5"
    VIDEO = "video", "Video"
    AUDIO = "audio", "Audio"
    NATIVE = "native", "Native"


class ReviewStatus(models.TextChoices):
    PENDING = "pending", "Pending review"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


# The OpenRTB `format` each kind serves as.
SERVING_FORMAT = {
    CreativeKind.IMAGE: "banner",
    CreativeKind.HTML5: "banner",
    CreativeKind.VIDEO: "video",
    CreativeKind.AUDIO: "audio",
    CreativeKind.NATIVE: "native",
}


class CreativeQuerySet(OrgQuerySet):
    def servable(self) -> "CreativeQuerySet":
        """Approved and not archived: what the serving snapshot may carry."""
        return self.filter(status=ReviewStatus.APPROVED, archived_at__isnull=True)

    def awaiting_review(self) -> "CreativeQuerySet":
        """Pending and not archived, oldest first: the review queue."""
        return self.filter(status=ReviewStatus.PENDING, archived_at__isnull=True).order_by(
            "updated_at", "id"
        )

    def for_rendering(self) -> "CreativeQuerySet":
        """With what `creatives.snapshot.creative_snap` reads, so rendering runs no queries."""
        return self.select_related("advertiser").prefetch_related("renditions")


class Creative(models.Model):
    advertiser = models.ForeignKey(
        "campaigns.Advertiser", on_delete=models.PROTECT, related_name="creatives"
    )
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=CreativeKind.choices, default=CreativeKind.IMAGE)

    # Review
    status = models.CharField(
        max_length=20, choices=ReviewStatus.choices, default=ReviewStatus.PENDING, db_index=True
    )
    rejection_reason = models.TextField(blank=True)
    # What the automatic checks found: [{"field": ..., "message": ...}]; empty when they passed.
    check_failures = models.JSONField(default=list, blank=True, editable=False)
    checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        editable=False, related_name="+",
    )  # fmt: skip
    reviewed_at = models.DateTimeField(null=True, blank=True, editable=False)
    archived_at = models.DateTimeField(null=True, blank=True, editable=False)

    # What every kind has
    # Declared for image and HTML5 (an image must match it); the largest rendition for video,
    # the image for native, 0x0 for audio.
    width = models.PositiveIntegerField(default=0)
    height = models.PositiveIntegerField(default=0)
    click_url = models.URLField(
        "landing URL", max_length=2000, help_text="Where a click lands; https only."
    )
    # Derived from the landing URL by the automatic checks (the verified domain it matches).
    adomain = models.CharField(max_length=253, blank=True, editable=False)
    categories = models.JSONField(
        default=list, blank=True, validators=[validate_categories],
        help_text='IAB content categories of the ad, e.g. ["IAB8"]',
    )  # fmt: skip
    secure = models.BooleanField(
        default=True,
        help_text="Loads every resource over https (required on https pages). HTML5 and VAST "
        "tags are checked for http: resources when set.",
    )

    # Image (and native's main image)
    image = HashedImageField(upload_to=creative_upload_to, storage=creative_storage, blank=True)
    alt_text = models.CharField(max_length=200, blank=True)

    # HTML5: a third-party tag, or a zip bundle with an entry file
    html_tag = models.TextField(
        "HTML tag", blank=True, validators=[MaxLengthValidator(validation.MAX_TAG_CHARS)]
    )
    bundle = HashedFileField(
        "HTML5 bundle", upload_to=creative_upload_to, storage=creative_storage, blank=True,
        help_text="A zip with the entry file and its assets.",
    )  # fmt: skip
    entry_file = models.CharField(max_length=200, default="index.html", blank=True)
    # Where the bundle was unpacked in storage; the entry file is served from there.
    bundle_root = models.CharField(max_length=200, blank=True, editable=False)

    # Video and audio: uploaded renditions (`renditions`), or a third-party VAST tag
    vast_tag_url = models.URLField(
        "VAST tag URL", max_length=2000, blank=True,
        help_text="A third-party VAST tag, served as a VAST Wrapper.",
    )  # fmt: skip
    duration = models.DecimalField(
        max_digits=8, decimal_places=3, default=Decimal("0"), validators=[MinValueValidator(0)],
        help_text="Seconds; read from the renditions, declared for a VAST tag.",
    )  # fmt: skip
    universal_ad_id = models.CharField(
        max_length=100, blank=True, help_text="The Ad-ID code, for VAST UniversalAdId."
    )
    ad_verifications = models.JSONField(
        "AdVerifications", default=list, blank=True,
        help_text='Open Measurement scripts for VAST <AdVerifications>: a JSON list like '
        '[{"vendor": "company.com-omid", "javascript_url": "https://...", '
        '"parameters": "..."}] (api_framework "omid" and browser_optional false by default).',
    )  # fmt: skip

    # Native
    title = models.CharField(max_length=90, blank=True)
    body = models.CharField(max_length=200, blank=True)
    call_to_action = models.CharField(max_length=25, blank=True)
    sponsored_by = models.CharField(max_length=50, blank=True)

    # Bumped on every change: the API's ETag.
    version = models.PositiveIntegerField(default=1, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CreativeQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["advertiser", "status"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.size})"

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"

    @property
    def serving_format(self) -> str:
        return SERVING_FORMAT[CreativeKind(self.kind)]

    @property
    def is_wrapper(self) -> bool:
        return self.kind in (CreativeKind.VIDEO, CreativeKind.AUDIO) and bool(self.vast_tag_url)

    def clean(self) -> None:
        # The file-level facts (format, dimensions, weight) are read from the files, never
        # trusted from the form; renditions are checked by `validation.check_renditions`.
        errors = validation.Errors()
        validation.check_creative(self, errors)
        errors.raise_if_any()


class Rendition(models.Model):
    """One media file of a video or audio creative (several sizes and bitrates of one ad)."""

    creative = models.ForeignKey(Creative, on_delete=models.CASCADE, related_name="renditions")
    file = HashedFileField(upload_to=creative_upload_to, storage=creative_storage)
    original_name = models.CharField(max_length=255, blank=True)
    mime_type = models.CharField(max_length=50)
    width = models.PositiveIntegerField(default=0)
    height = models.PositiveIntegerField(default=0)
    duration = models.DecimalField(max_digits=8, decimal_places=3)
    bitrate = models.PositiveIntegerField(default=0, help_text="kbit/s")
    codec = models.CharField(max_length=50, blank=True)
    file_size = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-width", "-bitrate", "id"]

    def __str__(self) -> str:
        return (
            f"{self.original_name or self.file.name} ({self.mime_type} {self.width}x{self.height})"
        )


class VerifiedDomain(models.Model):
    """A domain ad ops confirmed the advertiser owns; landing URLs must be on one."""

    advertiser = models.ForeignKey(
        "campaigns.Advertiser", on_delete=models.CASCADE, related_name="verified_domains"
    )
    domain = models.CharField(
        max_length=253,
        validators=[validation.validate_domain],
        help_text="e.g. acme.com: covers acme.com and its subdomains (shop.acme.com).",
    )
    note = models.CharField(max_length=200, blank=True, help_text="How it was verified.")
    verified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        editable=False, related_name="+",
    )  # fmt: skip
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["domain"]
        constraints = [
            models.UniqueConstraint(fields=["advertiser", "domain"], name="verified_domain_once")
        ]

    def __str__(self) -> str:
        return f"{self.domain} ({self.advertiser})"

    def clean(self) -> None:
        self.domain = validation.normalise_domain(self.domain)


class ReviewQueueEntry(Creative):
    """The admin's review queue: pending creatives, oldest first."""

    class Meta:
        proxy = True
        verbose_name = "creative awaiting review"
        verbose_name_plural = "review queue"
