from datetime import datetime

from django.conf import settings
from django.db import models


class RequestKind(models.TextChoices):
    ACCESS = "access", "Access (export)"
    ERASURE = "erasure", "Erasure"


class SubjectKind(models.TextChoices):
    USER_ID = "user_id", "User id"
    DEVICE_ID = "device_id", "Device id (IFA)"


class RequestStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"  # the job stopped; running it again finishes the work


class DataSubjectRequestQuerySet(models.QuerySet["DataSubjectRequest"]):
    def recent(self) -> "DataSubjectRequestQuerySet":
        """Newest first, with who filed them."""
        return self.select_related("requested_by").order_by("-requested_at", "-id")

    def with_stale_export(self, before: datetime) -> "DataSubjectRequestQuerySet":
        """Access requests whose export was made before `before` and is still held."""
        return self.filter(kind=RequestKind.ACCESS, finished_at__lt=before).exclude(export="")


class DataSubjectRequest(models.Model):
    """An access or erasure request for one user or device id, and what its job did.

    The id itself is never stored: only its pseudonyms over the window that stored data can
    span (computed when the request is filed) and a short fingerprint for display. The row is
    the record of who asked and when; it is not deleted.
    """

    kind = models.CharField(max_length=10, choices=RequestKind.choices)
    subject_kind = models.CharField(
        max_length=10, choices=SubjectKind.choices, default=SubjectKind.USER_ID
    )
    fingerprint = models.CharField(max_length=16, help_text="A keyed tag of the id, not the id.")
    pseudonyms = models.JSONField(default=list)
    # The pseudonyms cover every rotation period overlapping this window.
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    status = models.CharField(
        max_length=10, choices=RequestStatus.choices, default=RequestStatus.PENDING
    )
    # Progress of the last run, and its totals once done.
    entries_total = models.PositiveBigIntegerField(default=0)
    entries_scanned = models.PositiveBigIntegerField(default=0)
    # What was found (access) or erased (erasure), per store: {"events": 12, ...}.
    counts = models.JSONField(default=dict, blank=True)
    # An access request's JSON export; emptied DSAR_EXPORT_RETENTION_DAYS after it is made.
    export = models.TextField(blank=True)
    error = models.TextField(blank=True)
    notes = models.TextField(blank=True, help_text="e.g. the ticket this request came from.")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    runs = models.PositiveIntegerField(default=0)

    objects = DataSubjectRequestQuerySet.as_manager()

    class Meta:
        ordering = ["-requested_at", "-id"]
        verbose_name = "data-subject request"

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}, subject {self.fingerprint}"

    @property
    def in_progress(self) -> bool:
        return self.status in {RequestStatus.PENDING, RequestStatus.RUNNING}


class VendorListQuerySet(models.QuerySet["VendorList"]):
    def newest(self) -> "VendorList | None":
        """The highest GVL version loaded: the last good one."""
        return self.order_by("-version").first()


class VendorList(models.Model):
    """One version of the IAB Europe Global Vendor List as loaded (a good one only: a list
    that does not parse leaves no row). Buyers are judged by the newest."""

    version = models.PositiveIntegerField(unique=True, help_text="vendorListVersion")
    tcf_policy_version = models.PositiveIntegerField(null=True, blank=True)
    last_updated = models.DateTimeField(null=True, blank=True, help_text="As the list says.")
    vendor_count = models.PositiveIntegerField(default=0)
    source = models.CharField(max_length=500)
    fetched_at = models.DateTimeField(auto_now_add=True)
    data = models.JSONField(help_text="The vendor-list.json as loaded.")

    objects = VendorListQuerySet.as_manager()

    class Meta:
        ordering = ["-version"]
        verbose_name = "Global Vendor List version"

    def __str__(self) -> str:
        return f"GVL v{self.version}"
