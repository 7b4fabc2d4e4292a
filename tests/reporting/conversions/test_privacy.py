"""Conversions under data-subject requests (through the real worker) and retention."""

import time
from datetime import timedelta
from typing import Any

import msgspec
import pytest
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from redis import Redis

from compliance.pseudonym import Pseudonymiser
from compliance.retention import purge_personal_data
from reporting.conversions.attribution import attribute_conversions, views_key
from reporting.conversions.models import Attribution, Conversion
from serving.keys import RedisKeys
from tests.compliance.test_dsar import URL, api_for, file, staff
from tests.conftest import wait_for
from tests.reporting.conversions.helpers import make_book, pixel, serve_and_click

SUBJECT, OTHER = "shopper-42", "shopper-43"


def pseudonym(raw: str) -> str:
    return Pseudonymiser.from_settings().pseudonym(raw, time.time())


def convert(adv: int, user: str, order: str) -> None:
    assert pixel(f"adv={adv}&order={order}&uid={user}").headers["x-conversion"] == "recorded"


@pytest.mark.django_db(transaction=True)
def test_an_erasure_deletes_the_subjects_conversions_and_touches(
    celery_worker: None, redis_client: Redis
) -> None:
    with transaction.atomic():
        book = make_book()
    adv = book.advertiser.pk
    for user, order in ((SUBJECT, "D-1"), (OTHER, "D-2")):
        serve_and_click(book, user_id=user, click=False)
        convert(adv, user, order)
    attribute_conversions()
    assert {c.order_id: c.attribution for c in Conversion.objects.all()} == {
        "D-1": Attribution.VIEW, "D-2": Attribution.VIEW,
    }  # fmt: skip
    keys = RedisKeys(settings.REDIS_KEY_PREFIX)
    assert redis_client.exists(views_key(keys, pseudonym(SUBJECT)))

    # Access first: the export holds the subject's conversion, not the other's.
    api = api_for(staff())
    access = api.post(URL, {"kind": "access", "subject_id": SUBJECT}, format="json").json()

    def finished(request_id: int) -> dict[str, Any] | None:
        body: dict[str, Any] = api.get(f"{URL}{request_id}/").json()
        return body if body["status"] in ("done", "failed") else None

    assert wait_for(lambda: finished(access["id"]), timeout=30)["status"] == "done"
    export = msgspec.json.decode(api.get(f"{URL}{access['id']}/export/").content)
    held = export["conversions"]
    assert [r["order_id"] for r in held if r["kind"] == "conversion"] == ["D-1"]
    touches = [r for r in held if r["kind"] == "post_view_touch"]
    assert [t["pseudonym"] for t in touches] == [pseudonym(SUBJECT)]

    erasure = api.post(URL, {"kind": "erasure", "subject_id": SUBJECT}, format="json").json()
    done = wait_for(lambda: finished(erasure["id"]), timeout=30)
    assert done["status"] == "done"
    assert done["counts"]["conversions_deleted"] == 1
    assert done["counts"]["conversion_touches"] >= 1
    assert list(Conversion.objects.values_list("order_id", flat=True)) == ["D-2"]
    assert not redis_client.exists(views_key(keys, pseudonym(SUBJECT)))
    assert redis_client.exists(views_key(keys, pseudonym(OTHER)))
    assert not Conversion.objects.filter(pseudonym=pseudonym(SUBJECT)).exists()


@pytest.mark.django_db
def test_retention_deletes_old_conversions_and_gives_touches_an_expiry(
    redis_client: Redis,
) -> None:
    book = make_book()
    convert(book.advertiser.pk, SUBJECT, "R-1")
    convert(book.advertiser.pk, SUBJECT, "R-2")
    attribute_conversions()
    old = timezone.now() - timedelta(days=settings.CONVERSION_RETENTION_DAYS + 1)
    Conversion.objects.filter(order_id="R-1").update(converted_at=old)
    stray = views_key(RedisKeys(settings.REDIS_KEY_PREFIX), "stray")
    redis_client.hset(stray, "1", "x")

    result = purge_personal_data()

    assert result.conversions_deleted == 1
    assert list(Conversion.objects.values_list("order_id", flat=True)) == ["R-2"]
    assert result.touches_given_expiry == 1
    assert 0 < redis_client.ttl(stray) <= 30 * 86400


@pytest.mark.django_db
def test_a_request_filed_for_nobody_finds_no_conversions() -> None:
    book = make_book()
    convert(book.advertiser.pk, OTHER, "N-1")
    attribute_conversions()
    request = file("access", subject_id="nobody-here")
    from compliance.dsar import run_request

    run_request(request.pk)
    request.refresh_from_db()
    assert request.counts["conversions"] == 0
    assert msgspec.json.decode(request.export)["conversions"] == []
