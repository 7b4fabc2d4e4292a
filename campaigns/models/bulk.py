from django.conf import settings
from django.db import models

from campaigns.models.core import Advertiser, OrgQuerySet


class BulkUploadStatus(models.TextChoices):
    VALIDATED = "validated", "Validated"  # the dry run found no errors: it may be applied
    FAILED = "failed", "Failed"  # the file has errors; nothing was written
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    ERROR = "error", "Error"  # the job broke off; its transaction rolled back, nothing written


class BulkUploadQuerySet(OrgQuerySet):
    def recent(self) -> "BulkUploadQuerySet":
        """Newest first, with what their listing shows."""
        return self.select_related("advertiser", "created_by").order_by("-created_at", "-id")


class BulkUpload(models.Model):
    """One bulksheet: its dry run, then its all-or-nothing apply and the result file."""

    advertiser = models.ForeignKey(
        Advertiser, on_delete=models.CASCADE, related_name="bulk_uploads"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    applied_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+",
    )  # fmt: skip
    file_name = models.CharField(max_length=255)
    # The decoded CSV; the apply reads it again and re-checks it against the current data.
    content = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=BulkUploadStatus.choices)
    rows_total = models.PositiveIntegerField(default=0)
    rows_processed = models.PositiveIntegerField(default=0)
    # {"Campaign": {"create": 2, "unchanged": 1}, ...}
    summary = models.JSONField(default=dict, blank=True)
    # [{"row": 7, "column": "Bid", "message": "..."}]; row 1 is the header, None the file.
    errors = models.JSONField(default=list, blank=True)
    result_csv = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = BulkUploadQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.file_name} ({self.get_status_display()})"

    @property
    def in_progress(self) -> bool:
        return self.status in {BulkUploadStatus.QUEUED, BulkUploadStatus.RUNNING}
