"""The measurement report page and its API (`/api/v1/reports/measurement/`, `budgets/`,
`buyer-latency/`), over the same tenancy as the delivery report: staff see everything (and
external demand), an advertiser only its organisation's rows."""

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.decorators import api_view
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

from campaigns.models import Campaign, LineItem
from reporting.measurement.budgets import budget_utilisation
from reporting.measurement.failures import creative_failures
from reporting.measurement.fx import FxHistory
from reporting.measurement.latency import buyer_latency
from reporting.measurement.report import (
    GEO_FIGURES,
    GEO_GROUPS,
    GROUPS,
    MeasurementReport,
    Source,
    label_rows,
    measure,
)
from reporting.models import (
    CreativeErrorHourly,
    CreativeHourly,
    DemandDaily,
    DemandHourly,
    DemandMonthly,
    GeoDeviceDaily,
    GeoDeviceHourly,
)
from reporting.reports.charts import HOURLY_UP_TO_DAYS
from reporting.reports.periods import Period, PeriodError, Preset, period_from
from reporting.reports.views import Scope, report_scope

_CODE = re.compile(r"^[A-Z]{3}$")
PAGE_SIZE = 100


class ParamError(ValueError):
    """A query parameter that cannot be read; the message names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


@dataclass
class Asked:
    scope: Scope
    period: Period
    group: str
    currency: str
    source: Source  # the grouping's rollups
    demand: Source  # the measurement rollups (the chart over time)
    # The rows of rollup models the caller may see under the scope and filters asked.
    scoped: Callable[..., list[Any]]


def _id(params: Any, name: str) -> int | None:
    value = params.get(name)
    if value in (None, ""):
        return None
    if not str(value).isdigit():
        raise ParamError(name, f"{value!r} is not an id.")
    return int(value)


def read_params(request: HttpRequest, now: datetime) -> Asked:
    """Tenancy, period, grouping, currency and filters of a request; ParamError (a 400)
    naming the parameter, Http404 for a campaign or line item the user may not see."""
    params = request.GET
    _id(params, "campaign")  # a malformed id is a 400 before tenancy makes it a 404
    line_item = _id(params, "line_item")
    scope = report_scope(request)
    try:
        period = period_from(params.dict(), scope.zone, now)
    except PeriodError as exc:
        raise ParamError(exc.field, exc.message) from None
    group = params.get("group_by") or "day"
    if group not in GROUPS:
        raise ParamError("group_by", f"{group!r} is not one of {', '.join(GROUPS)}.")
    if group == "buyer" and not request.user.is_staff:
        raise ParamError("group_by", "buyers are reported to ad ops staff only.")
    default = scope.organisation.currency if scope.organisation else settings.SERVING_CURRENCY
    currency = (params.get("currency") or default).upper()
    if not _CODE.match(currency) or not FxHistory(now.date()).known(currency):
        raise ParamError("currency", f"{currency!r} is not a currency with an exchange rate.")
    user = request.user
    if line_item is not None and not LineItem.objects.for_user(user).filter(pk=line_item).exists():
        raise Http404("no such line item")

    def scoped(*models: Any) -> list[Any]:
        tiers = [m.objects.for_user(user) for m in models]
        if scope.organisation is not None:
            tiers = [qs.filter(advertiser_id=scope.organisation.pk) for qs in tiers]
        if scope.campaign is not None:
            tiers = [qs.filter(campaign_id=scope.campaign.pk) for qs in tiers]
        if line_item is not None:
            tiers = [qs.filter(line_item_id=line_item) for qs in tiers]
        return tiers

    demand = Source(*scoped(DemandHourly, DemandDaily, DemandMonthly))
    source = demand
    if group in GEO_GROUPS:
        hours, days = scoped(GeoDeviceHourly, GeoDeviceDaily)
        source = Source(hours, days, None, GEO_FIGURES)
    return Asked(scope, period, group, currency, source, demand, scoped)


def run_report(asked: Asked, now: datetime, group: str | None = None) -> MeasurementReport:
    return measure(
        asked.source if group is None else asked.demand,
        group or asked.group,
        asked.currency,
        asked.period.start,
        asked.period.end,
        asked.scope.zone,
        now,
        settings.DEMAND_HOURLY_DAYS,
    )


def _plain(value: Any) -> Any:
    """Amounts and rates as decimal strings in JSON (never floats)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class _Pages(PageNumberPagination):
    page_size = PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = 1000

    def paginate_list(self, rows: Sequence[Any], request: Request) -> list[Any]:
        page = request.query_params.get("page", "1")
        if not page.isdigit() or int(page) < 1:
            raise ValidationError({"page": f"{page!r} is not a page number (1, 2, ...)."})
        size = request.query_params.get("page_size")
        if size is not None and (not size.isdigit() or not 1 <= int(size) <= self.max_page_size):
            raise ValidationError(
                {"page_size": f"must be a whole number from 1 to {self.max_page_size}."}
            )
        try:
            return list(self.paginate_queryset(rows, request) or [])
        except NotFound:
            raise ValidationError({"page": f"page {page} is past the last page."}) from None


def _asked_or_400(request: Request, now: datetime) -> Asked:
    try:
        return read_params(request._request, now)
    except ParamError as exc:
        raise ValidationError({exc.field: exc.message}) from None


COMMON = [
    OpenApiParameter("range", str, enum=list(Preset.values), description="default today"),
    OpenApiParameter("from", str, description="YYYY-MM-DD, with range=custom"),
    OpenApiParameter("to", str, description="YYYY-MM-DD, with range=custom"),
    OpenApiParameter("page", int),
    OpenApiParameter("page_size", int, description=f"default {PAGE_SIZE}, at most 1000"),
]


@extend_schema(
    parameters=[
        *COMMON,
        OpenApiParameter("group_by", str, enum=list(GROUPS), description="default day"),
        OpenApiParameter(
            "currency", str, description="report currency; default the organisation's"
        ),
        OpenApiParameter("campaign", int),
        OpenApiParameter("line_item", int),
    ],
    responses={200: OpenApiTypes.OBJECT},
)
@api_view(["GET"])
def measurement_api(request: Request) -> Response:
    """Requests, QPS, fill, win rates, RPM, eCPM, CTR, creative failures, viewability and
    video completion, one row per group; amounts converted into `currency` at the rates in
    effect on each day (`fx_note` says which)."""
    now = timezone.now()
    asked = _asked_or_400(request, now)
    report = run_report(asked, now)
    pages = _Pages()
    rows = pages.paginate_list(report.rows, request)
    label_rows(report.group, rows, report.zone)
    response = pages.get_paginated_response([_plain(r) for r in rows])
    response.data.update(
        {
            "group_by": report.group,
            "currency": report.currency,
            "period": {
                "start": report.start.isoformat(),
                "end": report.end.isoformat(),
                "zone": report.zone.key,
            },
            "totals": _plain(report.totals),
            "fx_note": report.fx_note,
            "notes": report.notes,
        }
    )
    return response


def failures(asked: Asked) -> list[dict[str, Any]]:
    """Creative failure rate by kind and error code over the period asked."""
    errors, shown = asked.scoped(CreativeErrorHourly, CreativeHourly)
    return creative_failures(errors, shown, asked.period.start, asked.period.end)


@extend_schema(
    parameters=[*COMMON, OpenApiParameter("campaign", int), OpenApiParameter("line_item", int)],
    responses={200: OpenApiTypes.OBJECT},
)
@api_view(["GET"])
def creative_failures_api(request: Request) -> Response:
    """Creative failures by creative kind and error code (VAST codes; HTML render failures
    use the VAST code of the same meaning): errors, the impressions of that kind and the
    failure rate (errors / impressions, %)."""
    asked = _asked_or_400(request, timezone.now())
    pages = _Pages()
    rows = pages.paginate_list(failures(asked), request)
    return pages.get_paginated_response([_plain(r) for r in rows])


def _campaigns(request: HttpRequest, scope: Scope) -> Any:
    rows = Campaign.objects.for_user(request.user).select_related("advertiser")
    if scope.organisation is not None:
        rows = rows.filter(advertiser_id=scope.organisation.pk)
    if scope.campaign is not None:
        rows = rows.filter(pk=scope.campaign.pk)
    return rows.exclude(status="archived").order_by("advertiser__name", "name", "pk")


@extend_schema(
    parameters=[OpenApiParameter("page", int), OpenApiParameter("page_size", int)],
    responses={200: OpenApiTypes.OBJECT},
)
@api_view(["GET"])
def budgets_api(request: Request) -> Response:
    """Every campaign the caller may see (archived ones aside): spend today and over its
    lifetime against its daily and lifetime budgets, in its own currency."""
    if (
        request.query_params.get("campaign") not in (None, "")
        and not str(request.query_params["campaign"]).isdigit()
    ):
        raise ValidationError({"campaign": f"{request.query_params['campaign']!r} is not an id."})
    scope = report_scope(request._request)
    pages = _Pages()
    campaigns = pages.paginate_list(list(_campaigns(request._request, scope)), request)
    rows = budget_utilisation(campaigns, timezone.now())
    return pages.get_paginated_response([_plain(r) for r in rows])


@extend_schema(
    parameters=[*COMMON, OpenApiParameter("group_by", str, enum=["buyer", "hour"])],
    responses={200: OpenApiTypes.OBJECT},
)
@api_view(["GET"])
def buyer_latency_api(request: Request) -> Response:
    """Buyer response time p50/p95/p99 per buyer (`group_by=buyer`, default) or per buyer and
    hour, merged from hourly histograms; staff only."""
    if not request.user.is_staff:
        raise PermissionDenied("buyer response times are reported to ad ops staff only")
    group = request.query_params.get("group_by") or "buyer"
    if group not in ("buyer", "hour"):
        raise ValidationError({"group_by": f"{group!r} is not one of buyer, hour."})
    now = timezone.now()
    asked = _asked_or_400(request, now)
    pages = _Pages()
    rows = buyer_latency(asked.period.start, asked.period.end, group == "hour", now)
    return pages.get_paginated_response([_plain(r) for r in pages.paginate_list(rows, request)])


# --- the page ---------------------------------------------------------------------------

METRIC_COLUMNS = (
    ("requests", "Requests"), ("qps", "QPS"), ("fill_rate", "Fill %"),
    ("our_win_rate", "Our win %"), ("bids", "Buyer bids"), ("buyer_win_rate", "Buyer win %"),
    ("impressions", "Impressions"), ("clicks", "Clicks"), ("ctr", "CTR %"),
    ("errors", "Creative errors"), ("error_rate", "Failure %"), ("viewability", "Viewable %"),
    ("video_start", "Video starts"), ("first_quartile_rate", "Q1 %"),
    ("midpoint_rate", "Mid %"), ("third_quartile_rate", "Q3 %"),
    ("completion_rate", "Complete %"), ("spend", "Spend"), ("rpm", "RPM"), ("ecpm", "eCPM"),
)  # fmt: skip


def _chart(asked: Asked, now: datetime) -> dict[str, Any]:
    """Requests, wins and impressions per hour (up to two days) or day, every bucket of the
    period present (zero where nothing was asked)."""
    period = asked.period
    unit = "hour" if period.days <= HOURLY_UP_TO_DAYS else "day"
    series = run_report(asked, now, group=unit)
    label_rows(unit, series.rows, series.zone)
    by_label = {r["label"]: r for r in series.rows}
    if unit == "hour":
        labels, at = [], period.start.astimezone(period.zone)
        while at < period.end:
            labels.append(f"{at:%Y-%m-%d %H:00}")
            at = (at + timedelta(hours=1)).astimezone(period.zone)
    else:
        labels = [(period.first + timedelta(days=i)).isoformat() for i in range(period.days)]
    empty = {"requests": 0, "wins": 0, "impressions": 0}
    return {
        "unit": unit,
        "zone": series.zone.key,
        "labels": labels,
        **{
            name: [by_label.get(label, empty)[name] for label in labels]
            for name in ("requests", "wins", "impressions")
        },
    }


@login_required
def measurement_page(request: HttpRequest) -> HttpResponse:
    """The measurement report: one table grouped as asked, a chart over time, the budget
    table of every campaign and, for staff, buyer response times."""
    now = timezone.now()
    base: dict[str, Any] = {
        "presets": Preset.choices,
        "groups": list(GROUPS),
        "params": request.GET,
        "columns": METRIC_COLUMNS,
        "default_currency": "",
    }
    try:
        asked = read_params(request, now)
    except ParamError as exc:
        return render(request, "reporting/measurement.html", {**base, "error": exc}, status=400)
    report = run_report(asked, now)
    page = Paginator(report.rows, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    label_rows(report.group, rows, report.zone)
    budgets = Paginator(list(_campaigns(request, asked.scope)), PAGE_SIZE).get_page(
        request.GET.get("budget_page")
    )
    context = {
        **base,
        "default_currency": report.currency,
        "asked": asked,
        "report": report,
        "rows": rows,
        "page": page,
        "chart": _chart(asked, now),
        "budgets": budget_utilisation(list(budgets.object_list), now),
        "failures": Paginator(failures(asked), PAGE_SIZE).get_page(request.GET.get("failure_page")),
        "budget_page": budgets,
        "latency": buyer_latency(asked.period.start, asked.period.end, False, now)
        if request.user.is_staff
        else None,
    }
    return render(request, "reporting/measurement.html", context)
