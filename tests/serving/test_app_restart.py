"""An app started again after a shutdown serves what is published now, even when the
snapshot counter started over (Redis lost its data) and reached the number it saw before."""

from typing import Any

import httpx
import pytest
from django.conf import settings
from redis import Redis

from campaigns.snapshot import publish_snapshot, published_version
from serving.app import ServingApp
from tests.conftest import run
from tests.factories import make_campaign, make_line_item, make_placement
from tests.serving.test_app import ad_body, config

pytestmark = pytest.mark.django_db


def test_a_restarted_app_loads_the_snapshot_published_after_a_redis_wipe(
    redis_client: Redis,
) -> None:
    first = make_placement()
    make_line_item(make_campaign(), "2.00")
    publish_snapshot()
    version = published_version()
    app = ServingApp(config())

    async def ask(key: str) -> int:
        await app.startup()
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://ads.test") as http:
                answer: Any = await http.post("/v1/ad", json=ad_body(key))
                return int(answer.status_code)
        finally:
            await app.shutdown()

    assert run(ask(first.key)) == 200

    # Redis forgets everything; the next publish reuses the same version number
    for key in redis_client.scan_iter(match=f"{settings.REDIS_KEY_PREFIX}*"):
        redis_client.delete(key)
    second = make_placement()
    while published_version() < version:
        publish_snapshot()
    assert published_version() == version

    assert run(ask(second.key)) == 200
