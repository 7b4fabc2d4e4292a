"""Issue 12 item 13: with Postgres refusing connections, the dashboard answers a clean 503
page, the API its JSON error shape with 503, and serving is not affected.

A real granian serves the whole product (adsplatform.asgi) with DATABASE_URL pointing at a
loopback port nothing listens on (the shared Postgres is never touched); the snapshot it
serves was published beforehand into the Redis the test run uses.
"""

from pathlib import Path

import httpx
import pytest
from django.conf import settings

from campaigns.demo import load_demo
from campaigns.demo_accounts import HOME_KEY
from campaigns.snapshot import publish_snapshot
from tests.faults.services import free_port, product_granian, project_env, wait_listening

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("debug", ["false", "true"])
def test_database_refusing_connections_gives_clean_503s(tmp_path: Path, debug: str) -> None:
    load_demo()
    publish_snapshot()
    port, closed = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    env = project_env(
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{closed}/nothing_here",
        REDIS_URL=settings.REDIS_URL,
        REDIS_KEY_PREFIX=settings.REDIS_KEY_PREFIX,
        DJANGO_DEBUG=debug,
        SERVING_PUBLIC_URL=base,
        # A request waits this long for a pooled connection before its 503 (10 s by default).
        DB_POOL_TIMEOUT="2",
    )
    server = product_granian(port, env=env, log=tmp_path / "granian.log")
    try:
        wait_listening(base, server)
        with httpx.Client(base_url=base, timeout=30) as client:
            # a logged-in dashboard user: the session is looked up in the database
            page = client.get("/", cookies={"sessionid": "x" * 32})
            api = client.get(
                "/api/v1/campaigns/", headers={"Authorization": "Bearer not-checked-yet"}
            )
            ad = client.post(
                "/v1/ad", json={"placement": HOME_KEY, "slots": [{"id": "t", "sizes": ["728x90"]}]}
            )

        assert page.status_code == 503
        assert page.headers["retry-after"] == "30"
        assert "Temporarily unavailable" in page.text
        assert "Traceback" not in page.text and "OperationalError" not in page.text
        assert api.status_code == 503
        assert api.json() == {
            "error": {
                "status": 503,
                "code": "unavailable",
                "message": "The database is unavailable; retry shortly.",
            }
        }
        assert ad.status_code == 200
        assert ad.json()["decisions"][0]["impression_url"]
    finally:
        server.stop()
