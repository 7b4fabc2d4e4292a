from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from rest_framework import generics
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

from campaigns.organisations import current_organisation
from reporting import queries
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


@login_required
def report_page(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    rows = HourlyRollup.objects.for_user(request.user)
    org = current_organisation(request)
    diagnostics = DeliveryDiagnosticHourly.objects.for_user(request.user)
    if org is not None:
        rows = rows.filter(advertiser_id=org.pk)
        diagnostics = diagnostics.filter(advertiser_id=org.pk)
    last_day = rows.filter(hour__gte=now - timedelta(hours=24))
    context: dict[str, Any] = {
        "totals": queries.totals(last_day),
        "line_items": queries.by_line_item(last_day),
        "bars": queries.hourly_bars(rows, now),
        "diagnostics": queries.delivery_diagnostics(
            diagnostics.filter(hour__gte=now - timedelta(hours=24))
        ),
        "chart_height": 120,
        # Consent is a property of traffic, not of one advertiser: ad ops see it.
        "consent": queries.consent_coverage(now - timedelta(hours=24))
        if request.user.is_staff
        else None,
    }
    return render(request, "reporting/report.html", context)
