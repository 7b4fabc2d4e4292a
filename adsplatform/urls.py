from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from campaigns.views import switch_organisation_view, tokens_page
from reporting.ivt.api import IvtReportView
from reporting.live.views import ops_page
from reporting.measurement.views import (
    budgets_api,
    buyer_latency_api,
    creative_failures_api,
    measurement_api,
    measurement_page,
)
from reporting.metrics.views import healthz, metrics_view, readyz
from reporting.pacing import pacing_chart
from reporting.reports.views import report_download, report_page
from reporting.views import DeliveryDiagnosticsView, HourlyReportView, targeting_match_view

admin.site.site_header = "adsplatform ad ops"

urlpatterns = [
    path("", include("campaigns.console.urls")),
    path("reports/", report_page, name="reports"),
    path("reports/measurement/", measurement_page, name="measurement-report"),
    path("reports/download/<str:table>.<str:fmt>", report_download, name="report-download"),
    path("reports/pacing/<int:campaign_id>/", pacing_chart, name="pacing-chart"),
    path("ops/live/", ops_page, name="ops-live"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("metrics", metrics_view, name="metrics"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("api/v1/reports/hourly/", HourlyReportView.as_view(), name="api-report-hourly"),
    path(
        "api/v1/reports/diagnostics/",
        DeliveryDiagnosticsView.as_view(),
        name="api-report-diagnostics",
    ),
    path("api/v1/reports/targeting/", targeting_match_view, name="api-report-targeting"),
    path("api/v1/", include("reporting.conversions.urls")),
    path("api/v1/reports/measurement/", measurement_api, name="api-report-measurement"),
    path(
        "api/v1/reports/creative-failures/",
        creative_failures_api,
        name="api-report-creative-failures",
    ),
    path("api/v1/reports/budgets/", budgets_api, name="api-report-budgets"),
    path("api/v1/reports/buyer-latency/", buyer_latency_api, name="api-report-buyer-latency"),
    path("api/v1/reports/ivt/", IvtReportView.as_view(), name="api-report-ivt"),
    path("api/v1/", include("campaigns.api.urls")),
    path("api/v1/", include("creatives.api.urls")),
    path("api/v1/", include("campaigns.bulk.urls")),
    path("api/v1/", include("compliance.urls")),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/v1/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("creatives/", include("creatives.urls")),
    path("settings/tokens/", tokens_page, name="tokens"),
    path("organisation/", switch_organisation_view, name="switch-organisation"),
]

if settings.SERVE_MEDIA:
    # `static()` only serves under DEBUG; the demo serves uploads itself (with the cache
    # headers a CDN would send), production uses a CDN.
    from creatives.views import serve_media

    urlpatterns += [path(f"{settings.MEDIA_URL.lstrip('/')}<path:path>", serve_media)]
