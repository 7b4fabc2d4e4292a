"""Attributed conversions in the telemetry files, through the real serving app, stream and
Celery worker: exactly the conversions sent, once each, joined to their decisions; exported
and erased by data-subject requests."""

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec
import pytest
from django.conf import settings
from django.db import transaction
from redis import Redis

from compliance.pseudonym import Pseudonymiser
from reporting.conversions.attribution import GROUP as ATTRIBUTION
from reporting.conversions.attribution import attribute_conversions
from reporting.conversions.models import Conversion
from reporting.tasks import attribute_conversions_task, write_telemetry_task
from reporting.telemetry.files import walk
from reporting.telemetry.writer import GROUP as TELEMETRY
from serving.keys import RedisKeys
from tests.compliance.test_dsar import URL, api_for, staff
from tests.conftest import wait_for
from tests.reporting.conversions.helpers import make_book, pixel, postback, serve_and_click
from tests.reporting.telemetry.test_writer import query


def done_up_to_now(client: Redis, group: str) -> bool:
    """The group has read and acknowledged every entry of the stream (its commit is done)."""
    stream = RedisKeys(settings.REDIS_KEY_PREFIX).events
    last: Any = client.xrevrange(stream, count=1)
    groups = {g["name"]: g for g in client.xinfo_groups(stream)}
    found = groups.get(group.encode())
    return bool(
        found and last and found["last-delivered-id"] == last[0][0] and not found["pending"]
    )


CONVERSIONS = "read_parquet('ROOT/conversions/*/*/*.parquet')"
DECISIONS = "read_parquet('ROOT/decisions/*/*/*.parquet')"


def files(sql: str) -> list[tuple[Any, ...]]:
    """`query`, with CONVERSIONS and DECISIONS naming the datasets' files."""
    return query(sql.replace("CONVERSIONS", CONVERSIONS).replace("DECISIONS", DECISIONS))


@pytest.mark.django_db(transaction=True)
def test_the_files_hold_exactly_the_attributed_conversions_joined_to_their_decisions(
    celery_worker: None, redis_client: Redis
) -> None:
    with transaction.atomic():
        book = make_book(post_click_days=30, post_view_days=1)
    adv, li = book.advertiser.pk, book.line_item.pk
    clicked = serve_and_click(book)
    clid = parse_qs(urlsplit(clicked["location"]).query)["clid"][0]
    viewed = serve_and_click(book, user_id="shopper-9", click=False)
    pixel(f"adv={adv}&event=purchase&value=49.90&cur=USD&order=T-1&clid={clid}")
    pixel(f"adv={adv}&event=purchase&value=10&cur=EUR&order=T-2&uid=shopper-9")
    pixel(f"adv={adv}&event=signup&uid=never-saw-an-ad")  # not attributed: not written
    # The same order again, by the postback: counted (and written) once.
    postback(book.key, {"order_id": "T-1", "value": "49.90", "currency": "USD"})

    attribute_conversions_task.delay()
    write_telemetry_task.delay()
    wait_for(lambda: done_up_to_now(redis_client, ATTRIBUTION), timeout=60)
    wait_for(lambda: done_up_to_now(redis_client, TELEMETRY), timeout=60)
    assert Conversion.objects.count() == 3
    assert attribute_conversions().read == 0  # read again: nothing more

    rows = files(
        "SELECT c.schema_version, c.decision_id, c.attribution, c.event_name, c.value_micros,"
        " c.currency, c.attributed_currency, c.line_item_id, d.line_item_id, d.placement_id"
        " FROM CONVERSIONS c JOIN DECISIONS d USING (decision_id) ORDER BY c.value_micros"
    )
    placement = files("SELECT DISTINCT placement_id FROM DECISIONS")[0][0]
    assert rows == [
        (3, viewed["decision"]["id"], "post_view", "purchase", 10_000_000, "EUR", "USD", li, li,
         placement),
        (3, clicked["decision"]["id"], "post_click", "purchase", 49_900_000, "USD", "USD", li, li,
         placement),
    ]  # fmt: skip
    assert files("SELECT count(*), count(DISTINCT stream_id) FROM CONVERSIONS") == [(2, 2)]
    # Partitioned by the conversion's own UTC date and hour, like the other datasets.
    assert all(name.split("/")[1].startswith("date=") for name in walk("conversions"))
    # docs/telemetry.md's example: conversions and CPA-ready counts per line item.
    assert query(CONVERSIONS_BY_LINE_ITEM) == [(li, 2, 2, 1, 1)]


# The query docs/telemetry.md shows, run as written there (the root path substituted).
CONVERSIONS_BY_LINE_ITEM = """
SELECT d.line_item_id,
       count(DISTINCT d.decision_id) AS decisions,
       count(c.decision_id) AS conversions,
       count(*) FILTER (WHERE c.attribution = 'post_click') AS post_click,
       count(*) FILTER (WHERE c.attribution = 'post_view') AS post_view
FROM read_parquet('ROOT/decisions/*/*/*.parquet', hive_partitioning = true) d
LEFT JOIN read_parquet('ROOT/conversions/*/*/*.parquet', hive_partitioning = true) c
  USING (decision_id)
WHERE d.filled
GROUP BY ALL ORDER BY ALL
"""


def pseudonym(raw: str) -> str:
    return Pseudonymiser.from_settings().pseudonym(raw, time.time())


@pytest.mark.django_db(transaction=True)
def test_data_subject_requests_export_and_erase_a_pseudonyms_conversion_rows(
    celery_worker: None, redis_client: Redis
) -> None:
    with transaction.atomic():
        book = make_book()
    adv = book.advertiser.pk
    for user, order in (("shopper-52", "E-1"), ("shopper-53", "E-2")):
        serve_and_click(book, user_id=user, click=False)
        pixel(f"adv={adv}&order={order}&uid={user}")
    attribute_conversions()
    assert sorted(r[0] for r in files("SELECT pseudonymous_id FROM CONVERSIONS")) == sorted(
        [pseudonym("shopper-52"), pseudonym("shopper-53")]
    )
    api = api_for(staff())

    def finished(request_id: int) -> dict[str, Any] | None:
        body: dict[str, Any] = api.get(f"{URL}{request_id}/").json()
        return body if body["status"] in ("done", "failed") else None

    access = api.post(URL, {"kind": "access", "subject_id": "shopper-52"}, format="json").json()
    assert wait_for(lambda: finished(access["id"]), timeout=30)["status"] == "done"
    export = msgspec.json.decode(api.get(f"{URL}{access['id']}/export/").content)
    held = [r for r in export["telemetry"] if r["file"].startswith("conversions/")]
    assert [r["pseudonymous_id"] for r in held] == [pseudonym("shopper-52")]

    erasure = api.post(URL, {"kind": "erasure", "subject_id": "shopper-52"}, format="json").json()
    done = wait_for(lambda: finished(erasure["id"]), timeout=30)
    assert done["status"] == "done"
    assert done["counts"]["telemetry_rows_deleted"] == 1
    assert files("SELECT pseudonymous_id FROM CONVERSIONS") == [(pseudonym("shopper-53"),)]
