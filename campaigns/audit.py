"""The audit log: every create, update and state change, with who, when, and old/new values."""

import datetime
import decimal
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models

from campaigns.models import Advertiser, AuditAction, AuditEntry

# Bookkeeping fields that change on every save and say nothing about the edit.
SKIPPED = {"id", "version", "created_at", "updated_at"}


def _json_safe(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, models.Model):
        return value.pk
    return value


def snapshot_fields(obj: models.Model) -> dict[str, Any]:
    """The object's concrete field values, JSON-safe, keyed by attribute name."""
    return {
        f.attname: _json_safe(getattr(obj, f.attname))
        for f in obj._meta.concrete_fields
        if f.attname not in SKIPPED
    }


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    return {k: [before.get(k), v] for k, v in after.items() if before.get(k) != v}


def record(
    obj: models.Model,
    action: AuditAction,
    *,
    advertiser: Advertiser,
    by: Any,
    changes: dict[str, list[Any]],
) -> AuditEntry:
    """Append one entry to the object's history."""
    return AuditEntry.objects.create(
        advertiser=advertiser,
        actor=by if getattr(by, "is_authenticated", False) else None,
        action=action,
        content_type=ContentType.objects.get_for_model(obj),
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        changes=changes,
    )
