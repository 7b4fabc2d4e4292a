"""The live dashboard's websockets: `/ws/live/ops` for staff, `/ws/live/campaign/<id>` for
the members of the campaign's organisation (and staff). Anyone else is refused at the
handshake (HTTP 403) and is never added to a group, so receives nothing; access is checked
again at every ping (20 s), so a member removed, an account deactivated or no longer staff
is disconnected within one."""

from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.contrib.auth import get_user_model

from campaigns.models import Campaign
from reporting.live.publisher import OPS, campaign_watch, group_name, last_figures, watch

# Closed by us after a ping found access gone (a code the page reads as "do not retry").
FORBIDDEN = 4403


class LiveConsumer(AsyncJsonWebsocketConsumer):
    """Joins the group of what it watches once allowed; forwards the publisher's figures."""

    watched = ""

    async def allowed(self) -> bool:
        raise NotImplementedError

    async def connect(self) -> None:
        if not await self.allowed():
            await self.close()  # before accept: the handshake is refused
            return
        await self.channel_layer.group_add(group_name(self.watched), self.channel_name)
        await self.accept()
        await sync_to_async(watch)(self.watched)
        last = await sync_to_async(last_figures)(self.watched)
        if last is not None:
            await self.send_json(last)

    async def disconnect(self, code: int) -> None:
        if self.watched:
            await self.channel_layer.group_discard(group_name(self.watched), self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict) or content.get("type") != "ping":
            return
        if not await self.allowed():
            await self.close(code=FORBIDDEN)
            return
        # Renew both registrations: the publisher's (WATCH_SECONDS) and the group's own
        # expiry (a day), so a page left open for days keeps its figures.
        await self.channel_layer.group_add(group_name(self.watched), self.channel_name)
        await sync_to_async(watch)(self.watched)
        await self.send_json({"kind": "pong"})

    async def live_figures(self, event: dict[str, Any]) -> None:
        """A tick's figures from the publisher, as they are."""
        await self.send_json(event["figures"])


class OpsConsumer(LiveConsumer):
    """The ops page: serving requests per second and fill by door, health gauges."""

    watched = OPS

    async def allowed(self) -> bool:
        return await _may_see(self.scope.get("user"), None)


class CampaignConsumer(LiveConsumer):
    """A campaign page: spend today against budget, pacing rate, delivery."""

    async def allowed(self) -> bool:
        campaign_id = int(self.scope["url_route"]["kwargs"]["campaign_id"])
        self.watched = campaign_watch(campaign_id)
        return await _may_see(self.scope.get("user"), campaign_id)


@database_sync_to_async
def _may_see(user: Any, campaign_id: int | None) -> bool:
    """Staff (campaign None: the ops page), or a member of the campaign's organisation; the
    user read afresh, so a ping sees an account deactivated or no longer staff."""
    if user is None or not user.is_authenticated:
        return False
    fresh = get_user_model().objects.filter(pk=user.pk, is_active=True).first()
    if fresh is None:
        return False
    if campaign_id is None:
        return bool(fresh.is_staff)
    return bool(Campaign.objects.for_user(fresh).filter(pk=campaign_id).exists())


class UnknownPath(AsyncJsonWebsocketConsumer):
    """Any other websocket path: refused at the handshake."""

    async def connect(self) -> None:
        await self.close()
