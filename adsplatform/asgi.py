"""ASGI entry point: serving paths go to the lean serving app, everything else to Django."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "adsplatform.settings")

# Django must be set up before anything imports models.
django_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from serving.app import ServingApp  # noqa: E402

serving_application = ServingApp.from_settings()

application = ProtocolTypeRouter(
    {
        "http": URLRouter(
            [
                # channels routes ASGI apps; django-stubs types re_path for views only.
                re_path(r"^v1/", serving_application),  # type: ignore[arg-type]
                re_path(r"^openrtb2/", serving_application),  # type: ignore[arg-type]
                re_path(r"", django_application),  # type: ignore[arg-type]
            ]
        ),
        # Lifespan loads the first snapshot before the server reports ready.
        "lifespan": serving_application,
    }
)
