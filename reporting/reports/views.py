"""The report page and its downloads, scoped to what the user may see."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.utils.text import slugify

from campaigns.models import Advertiser, Campaign, LineItem
from campaigns.organisations import current_organisation, organisations_of
from reporting import queries
from reporting.models import (
    CreativeHourly,
    CreativeHourlyQuerySet,
    DeliveryDiagnosticHourly,
    DiagnosticQuerySet,
    HourlyRollup,
    HourlyRollupQuerySet,
    RequestKeyHourly,
)
from reporting.reports import mismatch
from reporting.reports.charts import chart_data
from reporting.reports.export import table_csv, table_xlsx
from reporting.reports.periods import Period, PeriodError, Preset, period_from
from reporting.reports.tables import TABLES, Sums, build_tables, percent, timeline

UTC_ZONE = ZoneInfo("UTC")


@dataclass
class Scope:
    """What one user's report covers: rows of their organisation(s) and its time zone."""

    organisation: Advertiser | None
    zone: ZoneInfo
    # Why the report is in UTC although an organisation has another zone, or "".
    zone_note: str
    rollups: HourlyRollupQuerySet
    creatives: CreativeHourlyQuerySet
    diagnostics: DiagnosticQuerySet
    line_items: QuerySet[LineItem]
    campaign: Campaign | None = None

    @property
    def name(self) -> str:
        org = self.organisation.name if self.organisation else "All organisations"
        return f"{org}, {self.campaign.name}" if self.campaign else org


def _campaign(request: HttpRequest) -> Campaign | None:
    """The `campaign` filter: one the user may see, else 404 (never another's name)."""
    raw = request.GET.get("campaign")
    if not raw:
        return None
    if not raw.isdigit():
        raise Http404("no such campaign")
    return get_object_or_404(Campaign.objects.for_user(request.user), pk=int(raw))


def report_scope(request: HttpRequest) -> Scope:
    """Tenancy first (staff see all, others their organisations), then the one chosen, then
    the campaign asked for."""
    user = request.user
    campaign = _campaign(request)
    org = current_organisation(request)
    rollups = HourlyRollup.objects.for_user(user).exclude(line_item_id=0)
    creatives = CreativeHourly.objects.for_user(user)
    diagnostics = DeliveryDiagnosticHourly.objects.for_user(user)
    line_items = LineItem.objects.for_user(user)
    note = ""
    if org is None and not getattr(user, "is_staff", False):
        # A member of one organisation works in it, whether or not they chose it.
        mine = list(organisations_of(user)[:2])
        org = mine[0] if len(mine) == 1 else None
    if org is not None:
        rollups = rollups.filter(advertiser_id=org.pk)
        creatives = creatives.filter(advertiser_id=org.pk)
        diagnostics = diagnostics.filter(advertiser_id=org.pk)
        line_items = line_items.filter(campaign__advertiser_id=org.pk)
        zone = ZoneInfo(org.time_zone)
    else:
        # Several organisations: their common zone, or UTC when they differ.
        zones = sorted(set(organisations_of(user).values_list("time_zone", flat=True)))
        zone = ZoneInfo(zones[0]) if len(zones) == 1 else UTC_ZONE
        if len(zones) > 1:
            note = "Your organisations are in different time zones: choose one to see its days."
    if campaign is not None:
        rollups = rollups.filter(campaign_id=campaign.pk)
        creatives = creatives.filter(campaign_id=campaign.pk)
        diagnostics = diagnostics.filter(campaign_id=campaign.pk)
        line_items = line_items.filter(campaign_id=campaign.pk)
        if org is None or org.pk != campaign.advertiser_id:
            org, note = campaign.advertiser, ""
            zone = ZoneInfo(org.time_zone)
    return Scope(org, zone, note, rollups, creatives, diagnostics, line_items, campaign)


def _in[Q: QuerySet[Any]](rows: Q, period: Period) -> Q:
    return rows.filter(hour__gte=period.start, hour__lt=period.end)


def _change(now: Decimal | int, before: Decimal | int) -> Decimal | None:
    if not before:
        return None
    return percent(Decimal(now) - Decimal(before), before)


def _kpis(current: dict[str, Sums], previous: dict[str, Sums]) -> list[dict[str, Any]]:
    """Per currency: each headline metric now, in the previous period and the change."""
    out = []
    for currency in sorted(set(current) | set(previous)):
        now, before = current.get(currency, Sums()), previous.get(currency, Sums())
        metrics = []
        for name, key, at in (
            ("Impressions", "impressions", 0),
            ("Clicks", "clicks", 1),
            ("CTR %", "ctr", 2),
            ("Spend", "spend", 3),
            ("eCPM", "ecpm", 4),
            ("CPC", "cpc", 5),
            ("Creative error rate %", "error_rate", 6),
        ):
            value, old = now.metrics[at], before.metrics[at]
            change = _change(value, old) if value is not None and old is not None else None
            metrics.append(
                {"name": name, "key": key, "value": value, "previous": old, "change": change}
            )
        out.append({"currency": currency, "metrics": metrics})
    return out


def _period_or_error(request: HttpRequest, scope: Scope, now: datetime) -> Period | PeriodError:
    try:
        return period_from(request.GET.dict(), scope.zone, now)
    except PeriodError as exc:
        return exc


def _targeting(scope: Scope, period: Period) -> list[mismatch.Funnel]:
    line_items = mismatch.live_line_items(scope.line_items)
    if not line_items:
        return []
    keys = mismatch.request_keys(_in(RequestKeyHourly.objects.all(), period))
    return mismatch.targeting_funnels(line_items, keys)


@login_required
def report_page(request: HttpRequest) -> HttpResponse:
    """Delivery over a period in the organisation's time zone, against the period before."""
    now = timezone.now()
    scope = report_scope(request)
    period = _period_or_error(request, scope, now)
    base: dict[str, Any] = {
        "presets": Preset.choices,
        "params": request.GET,
        "scope": scope,
        "query": request.GET.urlencode(),
    }
    if isinstance(period, PeriodError):
        return render(request, "reporting/report.html", {**base, "error": period}, status=400)
    previous = period.previous()
    tables, line = build_tables(_in(scope.rollups, period), _in(scope.creatives, period), period)
    before = timeline(_in(scope.rollups, previous), previous)
    current_totals = line.totals
    context = {
        **base,
        "period": period,
        "previous": previous,
        "kpis": _kpis(current_totals, before.totals),
        "chart": chart_data(period, line, previous, before),
        "several_currencies": len(current_totals) > 1,
        "tables": tables.values(),
        "diagnostics": queries.delivery_diagnostics(_in(scope.diagnostics, period)),
        "targeting": _targeting(scope, period),
        # Consent is a property of traffic, not of one advertiser: ad ops see it.
        "consent": queries.consent_coverage(period.start, period.end)
        if request.user.is_staff
        else None,
    }
    return render(request, "reporting/report.html", context)


FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@login_required
def report_download(request: HttpRequest, table: str, fmt: str) -> HttpResponse:
    """One report table as CSV or XLSX, for the same period and rows as the page."""
    if table not in TABLES or fmt not in FORMATS:
        raise Http404("no such table or format")
    scope = report_scope(request)
    period = _period_or_error(request, scope, timezone.now())
    if isinstance(period, PeriodError):
        return HttpResponse(str(period), status=400, content_type="text/plain; charset=utf-8")
    tables, _ = build_tables(
        _in(scope.rollups, period), _in(scope.creatives, period), period, only=[table]
    )
    chosen = tables[table]
    body = table_csv(chosen) if fmt == "csv" else table_xlsx(chosen, period, scope.name)
    name = f"{slugify(scope.name)}-{table}-{period.first}-{period.last}.{fmt}"
    response = HttpResponse(body, content_type=FORMATS[fmt])
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
