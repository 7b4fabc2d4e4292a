from datetime import UTC, datetime
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from rest_framework import generics
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

from reporting.models import (
    DeliveryDiagnosticHourly,
    DiagnosticQuerySet,
    HourlyRollup,
    HourlyRollupQuerySet,
)
from reporting.serializers import DeliveryDiagnosticSerializer, HourlyRollupSerializer


def _parse_time(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValidationError({name: f"{value!r} is not an ISO 8601 date or time."}) from exc
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, UTC)


def _filtered[Q: QuerySet[Any]](rows: Q, request: Request) -> Q:
    """The report filters every report API shares: since, until, campaign, line_item."""
    params = request.query_params
    since = _parse_time(params.get("since"), "since")
    until = _parse_time(params.get("until"), "until")
    if since:
        rows = rows.filter(hour__gte=since)
    if until:
        rows = rows.filter(hour__lt=until)
    for param, field in (("campaign", "campaign_id"), ("line_item", "line_item_id")):
        value = params.get(param)
        if value is not None:
            if not value.isdigit():
                raise ValidationError({param: f"{value!r} is not an id."})
            rows = rows.filter(**{field: int(value)})
    return rows


class HourlyReportView(generics.ListAPIView[HourlyRollup]):
    """Hourly delivery rows the caller may see, newest first.

    Filters: `since` and `until` (ISO 8601, hour starts), `campaign`, `line_item`.
    """

    serializer_class = HourlyRollupSerializer

    def get_queryset(self) -> HourlyRollupQuerySet:
        request: Request = self.request
        rows = _filtered(HourlyRollup.objects.for_user(request.user), request)
        return rows.order_by("-hour", "placement_id", "line_item_id")


class DeliveryDiagnosticsView(generics.ListAPIView[DeliveryDiagnosticHourly]):
    """Why line items were turned away, per hour and reason, newest first.

    Filters: `since`, `until` (ISO 8601), `campaign`, `line_item`, `reason`.
    """

    serializer_class = DeliveryDiagnosticSerializer

    def get_queryset(self) -> DiagnosticQuerySet:
        request: Request = self.request
        rows = _filtered(DeliveryDiagnosticHourly.objects.for_user(request.user), request)
        if request.query_params.get("reason"):
            rows = rows.filter(reason=request.query_params["reason"])
        return rows.order_by("-hour", "line_item_id", "reason")
