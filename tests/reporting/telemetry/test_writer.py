"""The telemetry files: exactly the events sent, once each, joined by decision id, readable
by DuckDB; nothing personal without consent; erased and exported by data-subject requests;
deleted past retention."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import httpx
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from redis import Redis

from campaigns.models import LineItemCreative
from campaigns.snapshot import publish_snapshot
from compliance.dsar import run_request
from compliance.models import DataSubjectRequest, RequestKind
from compliance.retention import purge_personal_data
from reporting.ingest import ingest_events
from reporting.tasks import write_telemetry_task
from reporting.telemetry.files import read_table, storage, walk
from reporting.telemetry.privacy import purge_old_files
from reporting.telemetry.writer import GROUP, write_telemetry
from serving.events import Event, encode_events
from serving.keys import RedisKeys
from tests.compliance.tcf_encoder import Core, VendorSection, encode_core
from tests.conftest import wait_for
from tests.factories import make_campaign, make_creative, make_line_item, make_placement
from tests.serving.test_app import ad_body, with_client

HOUR_MS = 1_800_000_000_000 - (1_800_000_000_000 % 3_600_000)

# The query docs/telemetry.md shows, run as written there (the root path substituted).
CTR_BY_PLACEMENT_AND_HOUR = """
SELECT d.placement_id, d.date, d.hour,
       count(*) FILTER (WHERE o.kind = 'imp') AS impressions,
       count(*) FILTER (WHERE o.kind = 'clk') AS clicks,
       round(clicks / nullif(impressions, 0), 4) AS ctr
FROM read_parquet('ROOT/decisions/*/*/*.parquet', hive_partitioning = true) d
JOIN read_parquet('ROOT/outcomes/*/*/*.parquet', hive_partitioning = true) o
  USING (decision_id)
GROUP BY ALL ORDER BY ALL
"""


def root() -> Path:
    return Path(storage().path(""))


def query(sql: str) -> list[tuple[Any, ...]]:
    relation = duckdb.sql(sql.replace("ROOT", str(root())))
    assert relation is not None
    return relation.fetchall()


def stream() -> str:
    return RedisKeys(settings.REDIS_KEY_PREFIX).events


def add(client: Redis, *events: Event) -> str:
    return str(client.xadd(stream(), {"v": encode_events(list(events))}))


def request(
    pl: int, d: str, ts: int, li: int = 5, u: str = "", cs: str = "→ personalised"
) -> Event:
    return Event(t="req", ts=ts, pl=pl, li=li, cp=3, adv=1, cr=9, d=d, cs=cs, u=u, ip="10.1.2.0")


def outcome(kind: str, pl: int, d: str, ts: int, cpm: int = 0) -> Event:
    return Event(t=kind, ts=ts, pl=pl, li=5, cp=3, adv=1, cr=9, cpm=cpm, d=d)


@pytest.mark.django_db
def test_files_hold_exactly_the_events_sent_joined_by_decision(redis_client: Redis) -> None:
    # Placement 2: 4 decisions in one hour, 3 impressions, 1 click; placement 7: 2 decisions
    # the next hour, 2 impressions, 2 clicks; one unfilled request; a loss (not written).
    sent = []
    for i in range(4):
        d = f"a{i}"
        sent.append(request(2, d, HOUR_MS + i))
        add(redis_client, sent[-1], Event(t="loss", ts=HOUR_MS, pl=2, li=6, d=d, r="outbid"))
        if i < 3:
            add(redis_client, outcome("imp", 2, d, HOUR_MS + 100 + i, cpm=2_000_000))
    add(redis_client, outcome("clk", 2, "a0", HOUR_MS + 200))
    for i in range(2):
        d = f"b{i}"
        add(redis_client, request(7, d, HOUR_MS + 3_600_000 + i))
        add(redis_client, outcome("imp", 7, d, HOUR_MS + 3_600_100 + i, cpm=1_000_000))
        add(redis_client, outcome("clk", 7, d, HOUR_MS + 3_600_200 + i))
    add(redis_client, Event(t="req", ts=HOUR_MS + 5, pl=2, d="empty", cs="→ personalised", x="[1,"))
    viewable = Event(t="evt", ts=HOUR_MS + 300, pl=2, li=5, cp=3, adv=1, cr=9, d="a1", r="viewable")
    add(redis_client, viewable)

    # Small batches, so several files per hour and several watermark commits.
    result = write_telemetry(batch_size=4)

    assert (result.read, result.written, result.decisions, result.outcomes) == (16, 16, 7, 9)
    assert write_telemetry().read == 0
    # Malformed slot features (not what serving writes) leave the columns null, blocking nothing.
    assert query(
        "SELECT door, candidates FROM read_parquet('ROOT/decisions/*/*/*.parquet')"
        " WHERE decision_id = 'empty'"
    ) == [(None, None)]
    files = list(walk())
    start = datetime.fromtimestamp(HOUR_MS / 1000, UTC)
    date, hour = start.date(), start.hour
    assert any(f.startswith(f"decisions/date={date}/hour={hour}/part-") for f in files)
    assert query(
        "SELECT count(*), count(DISTINCT decision_id), sum(filled::int) "
        "FROM read_parquet('ROOT/decisions/*/*/*.parquet')"
    ) == [(7, 7, 6)]
    assert query(
        "SELECT kind, count(*), sum(price_micros) FROM read_parquet('ROOT/outcomes/*/*/*.parquet')"
        " GROUP BY kind ORDER BY kind"
    ) == [("clk", 3, 0), ("evt", 1, 0), ("imp", 5, 8_000_000)]
    assert query(
        "SELECT decision_id, event_name FROM read_parquet('ROOT/outcomes/*/*/*.parquet')"
        " WHERE kind = 'evt'"
    ) == [("a1", "viewable")]
    assert query(CTR_BY_PLACEMENT_AND_HOUR) == [
        (2, date, hour, 3, 1, 0.3333),
        (7, date, (hour + 1) % 24, 2, 2, 1.0),
    ]


@pytest.mark.django_db
def test_a_batch_written_but_not_committed_is_written_once(
    redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(5):
        add(redis_client, request(2, f"c{i}", HOUR_MS + i))
        add(redis_client, outcome("imp", 2, f"c{i}", HOUR_MS + 10 + i))

    # The worker dies after writing the files, before the watermark commits.
    from reporting.models import StreamWatermark

    def crash(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("killed")

    save = StreamWatermark.save

    def crash_on_commit(mark: StreamWatermark, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("update_fields"):
            crash()
        save(mark, *args, **kwargs)

    monkeypatch.setattr(StreamWatermark, "save", crash_on_commit)
    with pytest.raises(ConnectionError):
        write_telemetry()
    monkeypatch.undo()
    assert list(walk())  # the files of the lost batch are there
    # ...and after the commit, before the acknowledgement.
    monkeypatch.setattr(Redis, "xack", crash)
    with pytest.raises(ConnectionError):
        write_telemetry()
    monkeypatch.undo()
    assert redis_client.xpending(stream(), GROUP)["pending"] == 10

    result = write_telemetry()

    assert (result.read, result.written, result.skipped) == (10, 0, 10)
    assert query(
        "SELECT count(*) FROM read_parquet('ROOT/*/*/*/*.parquet', union_by_name = true)"
    ) == [(10,)]


@pytest.mark.django_db
def test_raw_events_are_not_trimmed_before_the_files_hold_them(
    redis_client: Redis, settings: Any
) -> None:
    settings.RAW_EVENT_RETENTION_SECONDS = 0
    add(redis_client, request(2, "t0", HOUR_MS))
    write_telemetry()
    add(redis_client, request(2, "t1", HOUR_MS + 1))
    ingest_events()  # rolls both up; trims only the one the files hold
    purge_personal_data()
    assert redis_client.xlen(stream()) == 1
    assert write_telemetry().written == 1
    ingest_events()
    assert redis_client.xlen(stream()) == 0


@pytest.mark.django_db
def test_pseudonym_and_ip_only_where_consent_allowed_personalisation(redis_client: Redis) -> None:
    add(redis_client, request(2, "p", HOUR_MS, u="pseudo-1", cs="gdpr=1 tcf=valid → personalised"))
    add(redis_client, request(2, "c", HOUR_MS, u="pseudo-2", cs="gdpr=1 tcf=valid → contextual"))
    write_telemetry()
    assert query(
        "SELECT decision_id, consent_outcome, pseudonymous_id, ip_truncated "
        "FROM read_parquet('ROOT/decisions/*/*/*.parquet') ORDER BY decision_id"
    ) == [("c", "contextual", None, None), ("p", "personalised", "pseudo-1", "10.1.2.0")]


def make_request(kind: str) -> DataSubjectRequest:
    now = datetime.now(UTC)
    staff, _ = get_user_model().objects.get_or_create(username="privacy-officer")
    return DataSubjectRequest.objects.create(
        kind=kind, fingerprint="abcd1234", pseudonyms=["subject"], window_start=now,
        window_end=now, requested_by=staff,
    )  # fmt: skip


@pytest.mark.django_db
def test_data_subject_requests_export_and_erase_a_pseudonyms_rows(redis_client: Redis) -> None:
    for i, u in enumerate(["subject", "subject", "other"]):
        add(redis_client, request(2, f"s{i}", HOUR_MS + i, u=u))
    add(redis_client, request(2, "alone", HOUR_MS + 3_600_000, u="subject"))
    write_telemetry()
    access = make_request(RequestKind.ACCESS)
    run_request(access.pk)
    access.refresh_from_db()
    exported = json.loads(access.export)["telemetry"]
    assert sorted(r["decision_id"] for r in exported) == ["alone", "s0", "s1"]
    assert {r["pseudonymous_id"] for r in exported} == {"subject"}

    erasure = make_request(RequestKind.ERASURE)
    run_request(erasure.pk)

    assert query(
        "SELECT decision_id, pseudonymous_id FROM read_parquet('ROOT/decisions/*/*/*.parquet')"
    ) == [("s2", "other")]
    erasure.refresh_from_db()
    assert erasure.counts["telemetry_rows_deleted"] == 3
    run_request(erasure.pk)  # a re-run erases nothing more
    assert query("SELECT count(*) FROM read_parquet('ROOT/decisions/*/*/*.parquet')") == [(1,)]


@pytest.mark.django_db
def test_retention_deletes_hours_older_than_the_setting(redis_client: Redis, settings: Any) -> None:
    settings.TELEMETRY_RETENTION_DAYS = 2
    now = datetime.fromtimestamp(HOUR_MS / 1000, UTC)
    add(redis_client, request(2, "old", HOUR_MS - 3 * 86_400_000))
    add(redis_client, request(2, "new", HOUR_MS - 86_400_000))
    write_telemetry()

    assert purge_old_files(now) == 1
    assert query("SELECT decision_id FROM read_parquet('ROOT/decisions/*/*/*.parquet')") == [
        ("new",)
    ]
    assert purge_old_files(now + timedelta(days=2)) == 1
    assert list(walk()) == []


@pytest.mark.django_db(transaction=True)
def test_served_ads_reach_the_files_through_the_worker_without_personal_data_unconsented(
    celery_worker: None, redis_client: Redis
) -> None:
    with transaction.atomic():
        placement = make_placement()
        campaign = make_campaign()
        winner = make_line_item(campaign, "2.50")
        # Two creatives weighted 3:1: the drawn one's propensity is 0.75 or 0.25.
        LineItemCreative.objects.filter(line_item=winner).update(weight=3)
        LineItemCreative.objects.create(
            line_item=winner, creative=make_creative(campaign.advertiser), weight=1
        )
        loser = make_line_item(campaign, "1.00")
    publish_snapshot()
    contextual = encode_core(
        Core(
            purposes_consent=frozenset({1, 2}),
            vendor_consents=VendorSection(max_id=9999, ids=frozenset({9999})),
        )
    )
    user = {"id": f"person-{uuid.uuid4().hex}"}
    device = {"ip": "203.0.113.77", "devicetype": 2, "geo": {"country": "US", "region": "US-CA"}}
    in_germany = {**device, "geo": {"country": "DE", "region": "DE-BE"}}

    async def scenario(client: httpx.AsyncClient, app: Any) -> list[httpx.Response]:
        bodies = [
            ad_body(placement.key, user=user, device=device),  # no GDPR: personalised
            ad_body(
                placement.key,
                regs={"gdpr": 1},
                user={**user, "consent": contextual},
                device=in_germany,
            ),
        ]
        served = [await client.post("/v1/ad", json=b) for b in bodies]
        for response in served:
            impression = response.json()["decisions"][0]["impression_url"]
            await client.get(impression.replace("http://ads.test", ""))
        await app.sink.drain()
        return served

    served = with_client(scenario)
    assert [r.status_code for r in served] == [200, 200]
    newest: Any = redis_client.xrevrange(stream(), count=1)
    last = newest[0][0]

    write_telemetry_task.delay()

    def written() -> bool:
        groups = {g["name"]: g for g in redis_client.xinfo_groups(stream())}
        group = groups.get(GROUP.encode())
        return bool(group and group["last-delivered-id"] == last and group["pending"] == 0)

    wait_for(written, timeout=60)
    rows = query(
        "SELECT d.consent_outcome, d.pseudonymous_id IS NOT NULL, d.ip_truncated IS NOT NULL,"
        " o.kind FROM read_parquet('ROOT/decisions/*/*/*.parquet') d"
        " JOIN read_parquet('ROOT/outcomes/*/*/*.parquet') o USING (decision_id)"
        " ORDER BY 1 DESC"
    )
    assert rows == [("personalised", True, True, "imp"), ("contextual", False, False, "imp")]
    features = query(
        "SELECT schema_version, door, format, size, country, region, device_type, propensity,"
        " clearing_price_micros, [(c.line_item_id, c.tier, c.bid_micros, c.score_micros)"
        " FOR c IN candidates], creative_id = candidates[1].creative_id"
        " FROM read_parquet('ROOT/decisions/*/*/*.parquet') ORDER BY consent_outcome DESC"
    )
    weights = {c.creative_id: c.weight for c in LineItemCreative.objects.filter(line_item=winner)}
    assert [row[:4] + row[6:7] for row in features] == [(3, "v1", "banner", "300x250", 2)] * 2
    assert [row[4] for row in features] == ["US", "DE"]
    assert [row[5] for row in features] == ["US-CA", None]  # region only where personalised
    assert {row[7] for row in features} <= {weights[c] / 4 for c in weights}
    tier = features[0][9][0][1]
    assert [row[9] for row in features] == [
        [(winner.pk, tier, 2_500_000, 2_500_000), (loser.pk, tier, 1_000_000, 1_000_000)]
    ] * 2
    assert [row[8] for row in features] == [1_010_000, 1_010_000]  # second price
    assert [row[10] for row in features] == [True, True]
    local = datetime.now(ZoneInfo(campaign.advertiser.time_zone))
    expected_hours = {
        local.weekday() * 24 + local.hour,
        (local.weekday() * 24 + local.hour - 1) % 168,
    }
    assert {
        h for (h,) in query("SELECT hour_of_week FROM read_parquet('ROOT/decisions/*/*/*.parquet')")
    } <= expected_hours
    held = repr([read_table(name).to_pylist() for name in walk()])
    assert user["id"] not in held
    assert "203.0.113.77" not in held  # truncated, where kept at all
