"""ASGI entry point: serving paths go to the lean serving app, everything else to Django."""

import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "adsplatform.settings")

# Django must be set up before anything imports models.
django_application = get_asgi_application()

from adsplatform.secret_keys import require_secrets  # noqa: E402

# A web server without its secrets would sign forgeable tokens: refuse to start instead.
require_secrets()

from channels.routing import ProtocolTypeRouter  # noqa: E402

from reporting.live.routing import websocket_application  # noqa: E402
from serving.app import ServingApp  # noqa: E402

serving_application = ServingApp.from_settings()

# Paths the serving app answers: /v1/... (ad, vast, imp, click, err, ev, health) and
# /openrtb2/auction. Everything else is the dashboard, the API and admin.
SERVING_PREFIXES = ("/v1/", "/openrtb2/")


class ServingFirst:
    """HTTP dispatch by path prefix. A plain prefix test, not channels' URLRouter: the router
    resolves a Django URL pattern and copies the scope on every request, a cost the serving
    path pays thousands of times a second for a two-way choice."""

    def __init__(self, serving: Any, django: Any) -> None:
        self.serving, self.django = serving, django

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["path"].startswith(SERVING_PREFIXES):
            await self.serving(scope, receive, send)
        else:
            await self.django(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": ServingFirst(serving_application, django_application),
        # The live dashboard (reporting.live): chosen by the scope's type, so HTTP, and with
        # it /v1/ad, never passes the session and origin checks it runs behind.
        "websocket": websocket_application(),
        # Lifespan loads the first snapshot before the server reports ready.
        "lifespan": serving_application,
    }
)
