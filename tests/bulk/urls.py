"""The project's URLs plus the bulksheet API under /api/v1/, as the project will include it."""

from django.urls import include, path

from adsplatform.urls import urlpatterns as project_urlpatterns

urlpatterns = [path("api/v1/", include("campaigns.bulk.urls")), *project_urlpatterns]
