"""Filters of the campaign API whose values need more checking than django-filter gives."""

from datetime import UTC, datetime
from typing import Any

import django_filters
from django import forms

from campaigns.models import AuditEntry


class UtcDateTimeField(forms.DateTimeField):
    """An aware datetime, converted to UTC: the database then never sees an offset it cannot
    store (Postgres refuses "time zone displacement out of range" past ±15:59, Python takes
    up to ±23:59), and a time that leaves the datetime range in UTC is a 400, not a 500."""

    def to_python(self, value: Any) -> datetime | None:
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(UTC)
        except (OverflowError, ValueError) as exc:
            raise forms.ValidationError("a date and time between years 1 and 9999 in UTC") from exc


class UtcDateTimeFilter(django_filters.DateTimeFilter):
    field_class = UtcDateTimeField


class AuditEntryFilter(django_filters.FilterSet):
    created_at__gte = UtcDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_at__lt = UtcDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditEntry
        fields = {
            "advertiser": ["exact"], "action": ["exact"], "object_id": ["exact"],
            "content_type__model": ["exact"],
        }  # fmt: skip
