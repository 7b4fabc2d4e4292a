from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from campaigns.views import dashboard, switch_organisation_view, tokens_page
from reporting.views import HourlyReportView, report_page

admin.site.site_header = "adsplatform ad ops"

urlpatterns = [
    path("", dashboard, name="dashboard"),
    path("reports/", report_page, name="reports"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/reports/hourly/", HourlyReportView.as_view(), name="api-report-hourly"),
    path("api/v1/", include("campaigns.api.urls")),
    path("api/v1/", include("campaigns.bulk.urls")),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/v1/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("settings/tokens/", tokens_page, name="tokens"),
    path("organisation/", switch_organisation_view, name="switch-organisation"),
]

if settings.SERVE_MEDIA:
    # `static()` only serves under DEBUG; the demo serves uploads itself, production uses a CDN.
    from django.views.static import serve

    urlpatterns += [
        path(
            f"{settings.MEDIA_URL.lstrip('/')}<path:path>",
            serve,
            {"document_root": settings.MEDIA_ROOT},
        )
    ]
