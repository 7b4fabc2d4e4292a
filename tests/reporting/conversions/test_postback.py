"""The signed postback: refused without a valid key and signature (401 with the reason),
400 naming the field for bad input, 202 and a stream event otherwise."""

import json
import time
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone
from redis import Redis

from reporting.conversions.attribution import attribute_conversions
from reporting.conversions.models import Conversion
from serving.events import decode_events
from serving.keys import RedisKeys
from tests.reporting.conversions.helpers import (
    POSTBACK,
    click_id,
    make_book,
    pixel,
    postback,
    signed_headers,
)

pytestmark = pytest.mark.django_db


def conv_events(client: Redis) -> list[Any]:
    reply: Any = client.xrange(RedisKeys(settings.REDIS_KEY_PREFIX).events)
    return [e for _, f in reply for e in decode_events(f[b"v"]) if e.t == "conv"]


def error(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body


def test_a_signed_postback_is_accepted_and_recorded(redis_client: Redis) -> None:
    book = make_book()
    response = postback(
        book.key, {"event": "purchase", "value": "19.99", "currency": "eur", "order_id": "P-1"}
    )
    assert response.status_code == 202
    assert response.json()["status"] == "accepted"
    [event] = conv_events(redis_client)
    assert (event.adv, event.r) == (book.advertiser.pk, "purchase")
    attribute_conversions()
    row = Conversion.objects.get()
    assert (row.source, row.currency, str(row.value)) == ("postback", "EUR", "19.990000")


def test_the_secret_as_a_bearer_key_is_accepted_too() -> None:
    book = make_book()
    headers = {"X-Conversion-Key": book.key.key_id, "Authorization": f"Bearer {book.key.secret}"}
    response = Client().post(
        POSTBACK, json.dumps({"order_id": "P-2"}), content_type="application/json",
        headers=headers,
    )  # fmt: skip
    assert response.status_code == 202


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("no_key", "X-Conversion-Key is missing"),
        ("unknown_key", "unknown or revoked"),
        ("revoked", "unknown or revoked"),
        ("bad_signature", "does not match the body"),
        ("other_body", "does not match the body"),
        ("stale", "more than 300 s from our clock"),
        ("no_signature", "Sign the body"),
        ("wrong_bearer", "bearer secret does not match"),
    ],
)
def test_a_bad_key_or_signature_is_refused_with_the_reason(
    case: str, reason: str, redis_client: Redis
) -> None:
    book = make_book()
    body = json.dumps({"order_id": "P-3"}).encode()
    headers = signed_headers(book.key, body)
    if case == "no_key":
        del headers["X-Conversion-Key"]
    elif case == "unknown_key":
        headers["X-Conversion-Key"] = "ck_nobody"
    elif case == "revoked":
        book.key.revoked_at = timezone.now()
        book.key.save()
    elif case == "bad_signature":
        headers["X-Conversion-Signature"] = "sha256=" + "0" * 64
    elif case == "other_body":
        body = json.dumps({"order_id": "P-4"}).encode()
    elif case == "stale":
        headers = signed_headers(book.key, body, at=time.time() - 600)
    elif case == "no_signature":
        del headers["X-Conversion-Signature"]
    elif case == "wrong_bearer":
        del headers["X-Conversion-Signature"]
        headers["Authorization"] = "Bearer not-the-secret"
    response = Client().post(POSTBACK, body, content_type="application/json", headers=headers)
    assert response.status_code == 401
    assert reason in error(response)["message"]
    assert "WWW-Authenticate" in response.headers
    assert conv_events(redis_client) == []


@pytest.mark.parametrize(
    ("fields", "path", "message"),
    [
        ({"value": "abc", "currency": "USD"}, "value", "is not a number"),
        ({"value": "-1", "currency": "USD"}, "value", "from 0 to"),
        ({"value": "1.0000001", "currency": "USD"}, "value", "decimal places"),
        ({"value": "10"}, "currency", "needed with a value"),
        ({"value": "10", "currency": "XYZ"}, "currency", "not an ISO 4217"),
        ({"event": "a purchase!"}, "event", "letters, digits"),
        ({"order_id": "x" * 101}, "order_id", "at most 100"),
        ({"order_id": ["A"]}, "order_id", "must be a string"),
        ({"click_id": "forged.click"}, "click_id", "not base64url"),
        ({"ts": time.time() + 3600}, "ts", "must be epoch seconds"),
        ({"ts": int(time.time()) + 3600}, "ts", "in the future"),
        ({"ts": "2026-01-01T00:00:00"}, "ts", "UTC offset"),
        ({"ts": int(time.time()) - 100 * 86400}, "ts", "more than 90 days ago"),
        ({"gdpr": 2}, "gdpr", "0 or 1"),
        ({"price": "10"}, "price", "Not a conversion field"),
    ],
)
def test_bad_fields_are_a_400_naming_the_field(
    fields: dict[str, Any], path: str, message: str, redis_client: Redis
) -> None:
    book = make_book()
    response = postback(book.key, fields)
    assert response.status_code == 400
    [field] = error(response)["fields"]
    assert field["path"] == path
    assert message.lower() in field["message"].lower()
    assert conv_events(redis_client) == []


def test_a_body_that_is_not_a_json_object_is_a_400() -> None:
    book = make_book()
    for body in (b"[1, 2]", b"{not json"):
        response = Client().post(
            POSTBACK, body, content_type="application/json",
            headers=signed_headers(book.key, body),
        )  # fmt: skip
        assert response.status_code == 400


def test_a_click_id_of_another_advertiser_is_refused() -> None:
    book, other = make_book(), make_book()
    response = postback(other.key, {"click_id": click_id(book, time.time())})
    assert response.status_code == 400
    assert error(response)["fields"][0]["path"] == "click_id"


def test_without_measurement_consent_nothing_is_recorded(redis_client: Redis) -> None:
    book = make_book()
    # gdpr = 1 and no TC string: no basis for measurement (TCF purpose 7).
    response = postback(book.key, {"order_id": "P-9", "gdpr": 1})
    assert response.status_code == 202
    assert response.json()["reason"] == "no_measurement_consent"
    answer = pixel(f"adv={book.advertiser.pk}&order=P-10&gdpr=1")
    assert answer.status_code == 200
    assert answer.headers["x-conversion"] == "not_recorded:no_measurement_consent"
    assert conv_events(redis_client) == []


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("event=purchase", "`adv`"),
        ("adv=x", "`adv`"),
        ("adv=1&value=ten&cur=USD", "`value`"),
        ("adv=1&cur=USDX", "`cur`"),
        ("adv=1&clid=abc", "`clid`"),
    ],
)
def test_the_pixel_answers_400_naming_the_parameter(query: str, detail: str) -> None:
    make_book()
    response = pixel(query)
    assert response.status_code == 400
    assert detail in response.json()["detail"]
