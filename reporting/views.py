from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import generics, serializers
from rest_framework.decorators import api_view
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from campaigns.models import LineItem
from reporting.models import (
    DeliveryDiagnosticHourly,
    DiagnosticQuerySet,
    HourlyRollup,
    HourlyRollupQuerySet,
    RequestKeyHourly,
)
from reporting.reports import mismatch
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


# The per-hour expansion multiplies hours by request keys by line items: keep it bounded.
MAX_TARGETING_HOURS = 7 * 24


@extend_schema(
    parameters=[
        OpenApiParameter("since", str, description="ISO 8601; default 24 hours ago"),
        OpenApiParameter("until", str, description="ISO 8601; default now; at most 7 days"),
        OpenApiParameter("campaign", int),
        OpenApiParameter("line_item", int),
    ],
    responses=inline_serializer(
        "TargetingMatch",
        {
            "results": serializers.ListField(
                child=inline_serializer(
                    "TargetingMatchHour",
                    {
                        "hour": serializers.DateTimeField(),
                        "line_item_id": serializers.IntegerField(),
                        "placement": serializers.IntegerField(),
                        "slot": serializers.IntegerField(),
                        "country": serializers.IntegerField(),
                        "device": serializers.IntegerField(),
                        "channel": serializers.IntegerField(),
                        "blocked_at": serializers.CharField(allow_null=True),
                    },
                )
            )
        },
    ),
)
@api_view(["GET"])
def targeting_match_view(request: Request) -> Response:
    """Per hour and live line item: ad opportunities at its placements, then of those its
    sizes/formats, countries, device types and channels (each narrowing the one before);
    `blocked_at` names the first axis no opportunity matched."""
    params = request.query_params
    until = _parse_time(params.get("until"), "until") or timezone.now()
    since = _parse_time(params.get("since"), "since") or until - timedelta(hours=24)
    if until <= since:
        raise ValidationError({"until": "must be after since."})
    if until - since > timedelta(hours=MAX_TARGETING_HOURS):
        raise ValidationError({"until": f"at most {MAX_TARGETING_HOURS} hours after since."})
    line_items = LineItem.objects.for_user(request.user)
    for param, field in (("campaign", "campaign_id"), ("line_item", "pk")):
        value = params.get(param)
        if value is not None:
            if not value.isdigit():
                raise ValidationError({param: f"{value!r} is not an id."})
            line_items = line_items.filter(**{field: int(value)})
    live = mismatch.live_line_items(line_items)
    rows = RequestKeyHourly.objects.filter(hour__gte=since, hour__lt=until)
    results = [
        {
            "hour": hour.isoformat(),
            "line_item_id": funnel.line_item_id,
            **{step["axis"]: step["matched"] for step in funnel.steps},
            "blocked_at": funnel.blocked_at["axis"] if funnel.blocked_at else None,
        }
        for hour, funnel in (mismatch.hourly_funnels(live, rows) if live else [])
    ]
    return Response({"results": results})
