from typing import Any

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models

from campaigns.models.core import Advertiser, OrgQuerySet


class AuditAction(models.TextChoices):
    CREATE = "create", "Created"
    UPDATE = "update", "Updated"
    STATUS = "status", "Status changed"
    DELETE = "delete", "Deleted"


class AuditEntryQuerySet(OrgQuerySet):
    def for_object(self, obj: models.Model) -> "AuditEntryQuerySet":
        """The history of one object, newest first."""
        return self.filter(
            content_type=ContentType.objects.get_for_model(obj), object_id=str(obj.pk)
        )


class AuditEntry(models.Model):
    """Who changed what and when: fields with their old and new values. Never edited."""

    advertiser = models.ForeignKey(
        Advertiser, on_delete=models.CASCADE, related_name="audit_entries"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    action = models.CharField(max_length=10, choices=AuditAction.choices)
    content_type = models.ForeignKey(ContentType, on_delete=models.PROTECT)
    object_id = models.CharField(max_length=40)
    target = GenericForeignKey("content_type", "object_id")
    object_repr = models.CharField(max_length=200)
    # {"field": [old, new]}, JSON-safe values.
    changes = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects: Any = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["content_type", "object_id"])]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.get_action_display()} {self.object_repr}"
