"""A campaign whose landing URL takes a click id, served by the real serving app."""

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
from django.conf import settings
from django.test import Client

from campaigns.models import Advertiser, Campaign, LineItem
from campaigns.snapshot import publish_snapshot
from creatives.models import Creative
from reporting.conversions.models import ConversionKey
from serving.app import ServingApp
from serving.conversions import ClickId, ClickIds
from tests.factories import make_campaign, make_line_item, make_placement
from tests.serving.test_app import ad_body, with_client

LANDING = "https://shop.example/landing?id=1&clid={CLICK_ID}"
POSTBACK = "/api/v1/conversions/postback/"


@dataclass
class Book:
    advertiser: Advertiser
    campaign: Campaign
    line_item: LineItem
    placement_key: str
    key: ConversionKey


def make_book(**campaign_fields: Any) -> Book:
    placement = make_placement()
    campaign = make_campaign()
    if campaign_fields:
        Campaign.objects.filter(pk=campaign.pk).update(**campaign_fields)
    li = make_line_item(campaign, "2.50")
    Creative.objects.filter(line_items=li).update(click_url=LANDING)
    publish_snapshot()
    key = ConversionKey.objects.create(advertiser=campaign.advertiser, name="shop backend")
    return Book(campaign.advertiser, campaign, li, placement.key, key)


def serve_and_click(book: Book, user_id: str = "", click: bool = True) -> dict[str, Any]:
    """One ad request (with a user id when given), its impression, and its click's landing."""

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> dict[str, Any]:
        body = ad_body(book.placement_key, **({"user": {"id": user_id}} if user_id else {}))
        [decision] = (await client.post("/v1/ad", json=body)).json()["decisions"]
        assert (await client.get(decision["impression_url"])).status_code == 200
        out = {"decision": decision}
        if click:
            out["location"] = (await client.get(decision["click_url"])).headers["location"]
        await app.sink.drain()
        return out

    return dict(with_client(scenario))


def pixel(query: str) -> httpx.Response:
    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> httpx.Response:
        response = await client.get(f"/v1/conv?{query}")
        await app.sink.drain()
        return response

    result: httpx.Response = with_client(scenario)
    return result


def click_id(book: Book, clicked_at: float, decision: str = "dec-old-0") -> str:
    """A click id as the click redirect signs it, for a click at `clicked_at`."""
    li = book.line_item
    return ClickIds(settings.SERVING_SIGNING_KEY).sign(
        ClickId(decision, 1, li.pk, book.campaign.pk, book.advertiser.pk, 0, int(clicked_at))
    )


def signed_headers(key: ConversionKey, body: bytes, at: float | None = None) -> dict[str, str]:
    stamp = str(int(time.time() if at is None else at))
    digest = hmac.new(key.secret.encode(), stamp.encode() + b"." + body, hashlib.sha256)
    return {
        "X-Conversion-Key": key.key_id,
        "X-Conversion-Timestamp": stamp,
        "X-Conversion-Signature": f"sha256={digest.hexdigest()}",
    }


def postback(
    key: ConversionKey, fields: dict[str, Any], headers: dict[str, str] | None = None
) -> Any:
    """A signed postback (`headers` replace or add to the signature's)."""
    body = json.dumps(fields).encode()
    sent = {**signed_headers(key, body), **(headers or {})}
    return Client().post(POSTBACK, body, content_type="application/json", headers=sent)
