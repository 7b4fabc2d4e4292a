"""Structured logs: JSON lines carrying the request id, and the sampled serving access log."""

import io
import json
import logging
from typing import Any

import httpx
import pytest
from django.test import Client

from adsplatform.logs import formatters
from campaigns.snapshot import publish_snapshot
from serving.app import ServingApp
from tests.conftest import run
from tests.factories import make_campaign, make_line_item, make_placement
from tests.serving.test_app import ad_body, config

pytestmark = pytest.mark.django_db


def json_handler() -> tuple[logging.Handler, io.StringIO]:
    spec = dict(formatters()["json"])
    factory = spec.pop("()")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(factory(**spec))
    return handler, stream


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_django_log_lines_are_json_with_the_request_id_the_caller_sent() -> None:
    handler, stream = json_handler()
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    try:
        response = Client().get("/no/such/page", HTTP_X_REQUEST_ID="abc-123")
        made = Client().get("/no/such/page", HTTP_X_REQUEST_ID="not plain!")
    finally:
        logger.removeHandler(handler)

    assert response.status_code == 404
    assert response.headers["X-Request-ID"] == "abc-123"
    assert made.headers["X-Request-ID"] not in ("", "not plain!")  # one of ours instead
    first, second = lines(stream)
    assert first["request_id"] == "abc-123"
    assert first["level"] == "warning"
    assert first["logger"] == "django.request"
    assert "Not Found" in first["event"]
    assert first["timestamp"].endswith("Z")
    assert second["request_id"] == made.headers["X-Request-ID"]


def test_the_serving_access_log_samples_requests_with_their_ids(
    caplog: pytest.LogCaptureFixture,
) -> None:
    placement = make_placement()
    make_line_item(make_campaign(), "2.00")
    publish_snapshot()
    handler, stream = json_handler()
    logging.getLogger("serving.access").addHandler(handler)

    async def go(sample: float, n: int) -> list[str]:
        app = ServingApp(config(access_log_sample=sample))
        await app.startup()
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://ads.test") as c:
                answers = [await c.post("/v1/ad", json=ad_body(placement.key)) for _ in range(n)]
            return [a.json()["id"] for a in answers]
        finally:
            await app.shutdown()

    try:
        with caplog.at_level(logging.INFO, logger="serving.access"):
            ids = run(go(1.0, 3))
            run(go(0.0, 5))  # sampling off: nothing
    finally:
        logging.getLogger("serving.access").removeHandler(handler)

    records = lines(stream)
    assert [r["decision_id"] for r in records] == ids
    assert {(r["door"], r["status"], r["path"]) for r in records} == {("v1", 200, "/v1/ad")}
    assert all(r["ms"] > 0 and r["logger"] == "serving.access" for r in records)
