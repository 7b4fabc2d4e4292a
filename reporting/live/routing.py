"""The websocket side of the ASGI application (`adsplatform.asgi`): HTTP never goes here."""

from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path, re_path

from reporting.live.consumers import CampaignConsumer, OpsConsumer, UnknownPath

websocket_urlpatterns = [
    path("ws/live/ops", OpsConsumer.as_asgi()),
    re_path(r"^ws/live/campaign/(?P<campaign_id>[0-9]{1,18})$", CampaignConsumer.as_asgi()),
    re_path(r"", UnknownPath.as_asgi()),
]


def websocket_application() -> Any:
    """Session authentication (the dashboard's cookie) behind an Origin check: a page of
    another site cannot open a socket with the user's cookie (cross-site websocket
    hijacking); an unknown path closes the socket."""
    return AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
