"""Conversions through the real serving app, the real stream and the real Celery worker:
post-click and post-view windows, last touch, order ids counted once."""

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.db import transaction
from redis import Redis

from reporting.conversions.attribution import GROUP, attribute_conversions
from reporting.conversions.models import Attribution, Conversion
from reporting.tasks import attribute_conversions_task
from serving.conversions import ClickIds
from serving.keys import RedisKeys
from tests.conftest import wait_for
from tests.reporting.conversions.helpers import (
    click_id,
    make_book,
    pixel,
    postback,
    serve_and_click,
)

DAY = 86400


def attributed_up_to_now(client: Redis) -> bool:
    """The conversions group has read and acknowledged every entry (its commit is done)."""
    stream = RedisKeys(settings.REDIS_KEY_PREFIX).events
    last: Any = client.xrevrange(stream, count=1)
    groups = {g["name"]: g for g in client.xinfo_groups(stream)}
    group = groups.get(GROUP.encode())
    if group is None or not last:
        return False
    return bool(group["last-delivered-id"] == last[0][0] and not group["pending"])


@pytest.mark.django_db(transaction=True)
def test_conversions_inside_their_window_are_attributed_and_others_are_not(
    celery_worker: None, redis_client: Redis
) -> None:
    with transaction.atomic():
        book = make_book(post_click_days=30, post_view_days=1)
    adv = book.advertiser.pk
    # A click: its landing URL carries the signed click id, naming the decision.
    served = serve_and_click(book)
    clid = parse_qs(urlsplit(served["location"]).query)["clid"][0]
    click = ClickIds(settings.SERVING_SIGNING_KEY).verify(clid)
    assert click.decision_id == served["decision"]["id"]
    assert click.line_item_id == book.line_item.pk
    # A view only (no click), by a user whose id the advertiser's page knows too.
    viewed = serve_and_click(book, user_id="shopper-7", click=False)

    first = pixel(f"adv={adv}&event=purchase&value=49.90&cur=USD&order=A-1&clid={clid}")
    assert (first.status_code, first.headers["x-conversion"]) == (200, "recorded")
    assert first.headers["content-type"] == "image/gif"
    pixel(f"adv={adv}&event=purchase&value=10&cur=EUR&order=A-2&uid=shopper-7")
    pixel(f"adv={adv}&event=signup&uid=someone-else")  # never saw an ad: not attributed
    # The same order again, by the postback: counted once.
    again = postback(book.key, {"order_id": "A-1", "value": "49.90", "currency": "USD"})
    assert again.status_code == 202
    # A click 31 days ago, reported now: outside the 30-day post-click window.
    old = click_id(book, time.time() - 31 * DAY)
    assert postback(book.key, {"order_id": "A-3", "click_id": old}).status_code == 202
    # A click 29 days ago is inside it.
    recent = click_id(book, time.time() - 29 * DAY, decision="dec-recent-0")
    assert postback(book.key, {"order_id": "A-4", "click_id": recent}).status_code == 202

    attribute_conversions_task.delay()
    wait_for(lambda: attributed_up_to_now(redis_client), timeout=30)

    rows = {c.order_id or c.event: c for c in Conversion.objects.all()}
    assert set(rows) == {"A-1", "A-2", "signup", "A-3", "A-4"}  # A-1 once
    a1 = rows["A-1"]
    assert (a1.attribution, a1.decision_id, a1.line_item_id) == (
        Attribution.CLICK, click.decision_id, book.line_item.pk,
    )  # fmt: skip
    assert a1.source == "pixel" and str(a1.value) == "49.900000"
    assert rows["A-2"].attribution == Attribution.VIEW
    assert rows["A-2"].decision_id == viewed["decision"]["id"]
    value, converted = rows["A-2"].value, rows["A-2"].attributed_value
    assert value is not None and converted is not None
    assert converted > value  # EUR in the USD campaign, converted at FX_RATES
    assert rows["signup"].attribution == Attribution.NONE
    assert rows["A-3"].attribution == Attribution.NONE
    assert rows["A-4"].attribution == Attribution.CLICK
    assert rows["A-4"].decision_id == "dec-recent-0"


@pytest.mark.django_db
def test_a_view_outside_the_post_view_window_or_with_it_off_is_not_credited() -> None:
    book = make_book(post_click_days=30, post_view_days=0)
    serve_and_click(book, user_id="shopper-8", click=False)
    pixel(f"adv={book.advertiser.pk}&order=B-1&uid=shopper-8")
    attribute_conversions()
    assert Conversion.objects.get(order_id="B-1").attribution == Attribution.NONE


@pytest.mark.django_db
def test_a_click_beats_an_earlier_view_and_a_duplicate_order_counts_once() -> None:
    book = make_book()
    serve_and_click(book, user_id="shopper-9", click=False)
    clid = parse_qs(urlsplit(serve_and_click(book)["location"]).query)["clid"][0]
    query = f"adv={book.advertiser.pk}&order=C-1&uid=shopper-9&clid={clid}"
    pixel(query)
    pixel(query)
    result = attribute_conversions()
    assert (result.conversions, result.duplicates, result.attributed) == (1, 1, 1)
    assert Conversion.objects.get().attribution == Attribution.CLICK
    # Read again (a crash before the acknowledgement): the watermark makes it a no-op.
    assert attribute_conversions().conversions == 0
    assert Conversion.objects.count() == 1


@pytest.mark.django_db
def test_another_advertisers_click_id_is_refused_by_the_pixel() -> None:
    book, other = make_book(), make_book()
    clid = click_id(book, time.time())
    response = pixel(f"adv={other.advertiser.pk}&clid={clid}")
    assert response.status_code == 400
    assert "`clid`" in response.json()["detail"]
    assert "another advertiser" in response.json()["detail"]
