"""The site's URLs plus the demo's media route (tests run with SERVE_MEDIA off)."""

from django.conf import settings
from django.urls import path

from adsplatform.urls import urlpatterns as site
from creatives.views import serve_media

urlpatterns = [
    *site,
    path(f"{settings.MEDIA_URL.lstrip('/')}<path:path>", serve_media),
]
