"""Data-subject requests on the real Redis and database: filing, access, erasure, re-runs."""

import json
import time
from typing import Any

import msgspec
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Sum
from django.test import Client
from django.utils import timezone
from redis import Redis
from rest_framework.test import APIClient

from compliance.dsar import JobInterrupted, counts_key, progress_key, run_request
from compliance.models import DataSubjectRequest, RequestKind, RequestStatus, SubjectKind
from compliance.pseudonym import Pseudonymiser
from compliance.services import file_request
from reporting.ingest import CONSUMER, GROUP, ingest_events
from reporting.ivt.models import IvtRefund, RefundScope
from reporting.models import HourlyRollup, StreamWatermark
from serving.events import Event, decode_events, encode_events
from serving.keys import RedisKeys
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db

SUBJECT = "user-4711"
OTHER = "user-0815"
LEDGER = "gdpr=1 tcf=valid p2=yes p34=yes → personalised"


def keys() -> RedisKeys:
    return RedisKeys(settings.REDIS_KEY_PREFIX)


def pseudonym(raw_id: str) -> str:
    return Pseudonymiser.from_settings().pseudonym(raw_id, time.time())


def ad_request(user: str, li: int = 5, slots: int = 2, ip: str = "203.0.113.0") -> list[Event]:
    """One ad request's entry as serving writes it: the id and IP on the first event only."""
    ts = int(time.time() * 1000)
    events = [
        Event(t="req", ts=ts, pl=2, li=li, cp=3, adv=1, cr=9, d=f"r{li}") for _ in range(slots)
    ]
    events[0] = msgspec.structs.replace(events[0], u=user, ip=ip, cs=LEDGER)
    return events


def add(client: Redis, events: list[Event]) -> str:
    entry_id: Any = client.xadd(keys().events, {"v": encode_events(events)})
    return str(entry_id.decode())


def entries(client: Redis) -> list[tuple[bytes, dict[bytes, bytes]]]:
    reply: Any = client.xrange(keys().events)
    return list(reply)


def stream(client: Redis) -> dict[str, list[Event]]:
    return {eid.decode(): decode_events(f[b"v"]) for eid, f in entries(client)}


def stored_bytes(client: Redis) -> bytes:
    return b"".join(f[b"v"] for _, f in entries(client))


def staff(username: str = "dpo") -> Any:
    users = get_user_model().objects
    return users.filter(username=username).first() or users.create_user(
        username, password="pw", is_staff=True
    )


def file(kind: str, subject_id: str = SUBJECT, **kwargs: Any) -> DataSubjectRequest:
    return file_request(
        kind=kind,
        subject_kind=kwargs.pop("subject_kind", SubjectKind.USER_ID),
        subject_id=subject_id,
        by=kwargs.pop("by", None) or staff(),
        **kwargs,
    )


def fill(client: Redis) -> dict[str, str]:
    """Two entries of the subject, three of someone else's, one without an id, caps for both."""
    me, other = pseudonym(SUBJECT), pseudonym(OTHER)
    ids = {
        "mine_1": add(client, ad_request(me, li=5)),
        "other_1": add(client, ad_request(other, li=6)),
        "anon": add(client, ad_request("", li=7, ip="")),
        "mine_2": add(client, ad_request(me, li=8, slots=1)),
        "other_2": add(client, ad_request(other, li=9)),
        "imp": add(client, [Event(t="imp", ts=int(time.time() * 1000), pl=2, li=5, d="r5-0")]),
    }
    client.hset(keys().frequency(me), mapping={"5:day:20270301": 2, "8:lifetime:0": 1})
    client.hset(keys().frequency(other), mapping={"6:day:20270301": 4})
    return ids


def test_filing_keeps_pseudonyms_and_a_fingerprint_never_the_id(redis_client: Redis) -> None:
    now = time.time()
    p = Pseudonymiser.from_settings()

    request = file(RequestKind.ACCESS, notes="ticket 12")

    row = DataSubjectRequest.objects.filter(pk=request.pk).values().get()
    assert SUBJECT not in json.dumps(row, default=str)
    assert row["fingerprint"] == p.fingerprint(SUBJECT)
    assert p.pseudonym(SUBJECT, now) in row["pseudonyms"]
    # The window spans the previous rotation period at least: frequency caps outlive a rotation.
    assert p.pseudonym(SUBJECT, now - p.rotation_seconds) in row["pseudonyms"]
    assert row["window_start"].timestamp() == pytest.approx(now - p.rotation_seconds, abs=5)
    assert (row["status"], row["requested_by_id"], row["notes"]) == (
        "pending",
        request.requested_by_id,
        "ticket 12",
    )


def test_a_device_id_request_covers_both_spellings_of_the_ifa() -> None:
    ifa = "6D92078A-8246-4BA4-AE5B-76104861E7DC"

    request = file(RequestKind.ACCESS, ifa, subject_kind=SubjectKind.DEVICE_ID)

    assert pseudonym(ifa) in request.pseudonyms
    assert pseudonym(ifa.lower()) in request.pseudonyms


def test_the_access_export_holds_the_subjects_events_and_frequency_caps(
    redis_client: Redis,
) -> None:
    ids = fill(redis_client)
    me = pseudonym(SUBJECT)
    request = file(RequestKind.ACCESS)

    assert run_request(request.pk) == "done"

    request.refresh_from_db()
    export = json.loads(request.export)
    assert [(e["stream_id"], e["line_item"], e["pseudonymous_id"]) for e in export["events"]] == [
        (ids["mine_1"], 5, me),
        (ids["mine_1"], 5, ""),  # the same request's second slot
        (ids["mine_2"], 8, me),
    ]
    first = export["events"][0]
    assert (first["type"], first["ip_truncated"], first["consent"], first["placement"]) == (
        "ad_request",
        "203.0.113.0",
        LEDGER,
        2,
    )
    assert first["time"].endswith("+00:00")
    assert export["frequency_caps"] == {me: {"5:day:20270301": 2, "8:lifetime:0": 1}}
    assert export["other_keys"] == {}
    assert me in export["pseudonymous_ids"]
    assert export["request"]["fingerprint"] == request.fingerprint
    assert SUBJECT not in request.export
    assert request.counts == {
        "events": 3, "telemetry": 0, "conversions": 0, "frequency_caps": 1, "user_syncs": 0,
        "ivt_counters": 0, "ivt_refunds": 0,
        "other_keys": 0,
    }  # fmt: skip
    assert (request.status, request.entries_total, request.entries_scanned) == ("done", 6, 6)
    assert len(stream(redis_client)) == 6  # an access request changes nothing
    assert not redis_client.exists(progress_key(request.pk))


def test_erasure_removes_exactly_the_subjects_data(redis_client: Redis) -> None:
    ids = fill(redis_client)
    before = stream(redis_client)
    me, other = pseudonym(SUBJECT), pseudonym(OTHER)
    # Ingestion has rolled up the first three entries; the rest are still to come.
    StreamWatermark.objects.create(stream=keys().events, last_id=ids["anon"])
    redis_client.set(f"{settings.REDIS_KEY_PREFIX}experiment:{me}", "1")  # some future store
    for who in (me, other):  # invalid-traffic counters and holds (serving.ivt.judge)
        redis_client.set(keys().ivt_count("u", who, "imp", 60, 29_000_000), 3, ex=120)
        redis_client.set(keys().ivt_hold(who), "id_rate", ex=3600)
        redis_client.zadd(keys().ivt_held, {who: 1_790_000_000_000})
    pending = IvtRefund.objects.create(
        scope=RefundScope.PSEUDONYM, pseudonym=me, start=timezone.now(), end=timezone.now()
    )
    theirs = IvtRefund.objects.create(
        scope=RefundScope.PSEUDONYM, pseudonym=other, start=timezone.now(), end=timezone.now()
    )
    request = file(RequestKind.ERASURE)

    assert run_request(request.pk) == "done"

    after = stream(redis_client)
    # Everyone else's entries are untouched, byte for byte and id for id.
    for name in ("other_1", "anon", "other_2", "imp"):
        assert after[ids[name]] == before[ids[name]]
    assert ids["mine_1"] not in after  # rolled up already: deleted
    assert ids["mine_2"] not in after  # not rolled up: replaced by an anonymous copy
    [copy_id] = set(after) - set(before)
    assert copy_id > ids["imp"]
    assert after[copy_id] == [msgspec.structs.replace(before[ids["mine_2"]][0], u="", ip="", d="")]
    assert me.encode() not in stored_bytes(redis_client)
    assert not redis_client.exists(keys().frequency(me))
    assert redis_client.hgetall(keys().frequency(other)) == {b"6:day:20270301": b"4"}
    assert not redis_client.exists(f"{settings.REDIS_KEY_PREFIX}experiment:{me}")
    assert not redis_client.exists(keys().ivt_count("u", me, "imp", 60, 29_000_000))
    assert redis_client.exists(keys().ivt_count("u", other, "imp", 60, 29_000_000))
    assert not redis_client.exists(keys().ivt_hold(me))
    assert redis_client.exists(keys().ivt_hold(other))
    assert redis_client.zrange(keys().ivt_held, 0, -1) == [other.encode()]  # no refund for me
    pending.refresh_from_db()
    assert (pending.pseudonym, pending.status) == ("", "failed")  # cannot run without the id
    theirs.refresh_from_db()
    assert (theirs.pseudonym, theirs.status) == (other, "pending")
    request.refresh_from_db()
    assert request.counts == {
        "entries_deleted": 1,
        "events_deleted": 2,
        "entries_replaced": 1,
        "events_anonymised": 1,
        "frequency_caps": 1,
        "ivt_counters": 2,
        "ivt_refunds": 1,
        "other_keys": 1,
    }
    assert (request.status, request.export, request.finished_at is not None) == ("done", "", True)


def test_erased_events_not_yet_rolled_up_are_still_counted_once(redis_client: Redis) -> None:
    fill(redis_client)
    run_request(file(RequestKind.ERASURE).pk)

    ingest_events()

    totals = HourlyRollup.objects.aggregate(requests=Sum("requests"), imps=Sum("impressions"))
    assert totals == {"requests": 9, "imps": 1}  # every slot of the five requests, once


def test_another_persons_event_in_a_subjects_entry_is_not_theirs(redis_client: Redis) -> None:
    me, other = pseudonym(SUBJECT), pseudonym(OTHER)
    mixed = ad_request(me, li=5, slots=1) + ad_request(other, li=6, slots=1)  # never from serving
    rolled_up = add(redis_client, mixed)
    pending = add(redis_client, mixed)
    StreamWatermark.objects.create(stream=keys().events, last_id=rolled_up)
    access, erasure = file(RequestKind.ACCESS), file(RequestKind.ERASURE)

    run_request(access.pk)
    run_request(erasure.pk)

    access.refresh_from_db()
    erasure.refresh_from_db()
    assert [e["pseudonymous_id"] for e in json.loads(access.export)["events"]] == [me, me]
    [(copy_id, copy)] = stream(redis_client).items()
    assert copy_id > pending
    assert [(e.u, e.li) for e in copy] == [("", 5), (other, 6)]
    assert erasure.counts == {
        "entries_deleted": 1, "events_deleted": 1, "other_events_dropped": 1,
        "entries_replaced": 1, "events_anonymised": 1,
    }  # fmt: skip


def test_entries_ingestion_read_but_never_committed_are_counted_once(
    redis_client: Redis,
) -> None:
    fill(redis_client)
    stream_key = keys().events
    # An ingestion run read everything and died before its commit: all entries are pending.
    redis_client.xgroup_create(stream_key, GROUP, id="0")
    redis_client.xreadgroup(GROUP, CONSUMER, {stream_key: ">"})
    run_request(file(RequestKind.ERASURE).pk)

    ingest_events()

    totals = HourlyRollup.objects.aggregate(requests=Sum("requests"), imps=Sum("impressions"))
    assert totals == {"requests": 9, "imps": 1}


def test_running_a_request_again_changes_nothing(redis_client: Redis) -> None:
    fill(redis_client)
    request = file(RequestKind.ERASURE)
    run_request(request.pk)
    request.refresh_from_db()
    after_first = (stream(redis_client), request.counts, request.finished_at)

    assert run_request(request.pk) == "done"  # a second delivery of the task
    DataSubjectRequest.objects.filter(pk=request.pk).update(status=RequestStatus.PENDING)
    assert run_request(request.pk) == "done"  # even forced, it finds nothing more to erase

    request.refresh_from_db()
    assert stream(redis_client) == after_first[0]
    assert request.counts == after_first[1]
    assert request.runs == 2


@pytest.mark.parametrize("crash_at", ["events:scanned", "events:entry:1", "events:erased"])
def test_an_erasure_stopped_midway_finishes_exactly_when_run_again(
    redis_client: Redis, crash_at: str
) -> None:
    fill(redis_client)
    me = pseudonym(SUBJECT)
    # Two more entries of the subject, so the crash can fall between rewrites.
    add(redis_client, ad_request(me, li=11, slots=1))
    add(redis_client, ad_request(me, li=12, slots=1))
    request = file(RequestKind.ERASURE)

    def crash(step: str) -> None:
        if step == crash_at:
            raise JobInterrupted(step)

    with pytest.raises(JobInterrupted):
        run_request(request.pk, fault=crash)
    request.refresh_from_db()
    assert (request.status, request.error) == ("failed", f"JobInterrupted: {crash_at}")

    assert run_request(request.pk) == "done"

    request.refresh_from_db()
    assert request.counts == {
        "entries_replaced": 4,
        "events_anonymised": 5,
        "frequency_caps": 1,
    }
    assert me.encode() not in stored_bytes(redis_client)
    assert len(stream(redis_client)) == 8
    assert not redis_client.exists(keys().frequency(me), counts_key(request.pk))
    assert request.runs == 2


def test_an_export_of_nothing_is_an_empty_export(redis_client: Redis) -> None:
    request = file(RequestKind.ACCESS, "never-seen")

    run_request(request.pk)

    request.refresh_from_db()
    export = json.loads(request.export)
    assert (export["events"], export["frequency_caps"], request.counts["events"]) == ([], {}, 0)
    assert (request.entries_total, request.entries_scanned) == (0, 0)


# -- API -------------------------------------------------------------------------------------

URL = "/api/v1/data-subject-requests/"


def api_for(user: Any) -> APIClient:
    api = APIClient()
    api.force_login(user)
    return api


def test_only_staff_use_the_api() -> None:
    member = get_user_model().objects.create_user("member", password="pw")

    anonymous = APIClient().post(URL, {"kind": "access", "subject_id": SUBJECT}, format="json")
    forbidden = api_for(member).get(URL)

    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "not_authenticated"
    assert forbidden.status_code == 403
    assert forbidden.json()["error"] == {
        "status": 403,
        "code": "permission_denied",
        "message": "You do not have permission to perform this action.",
    }
    assert DataSubjectRequest.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "path", "message"),
    [
        ({"subject_id": SUBJECT}, "kind", "This field is required."),
        ({"kind": "delete", "subject_id": SUBJECT}, "kind", '"delete" is not a valid choice.'),
        ({"kind": "access"}, "subject_id", "This field is required."),
        ({"kind": "access", "subject_id": "  "}, "subject_id", "This field may not be blank."),
        ({"kind": "access", "subject_id": "a\x01b"}, "subject_id", "control characters"),
        (
            {
                "kind": "erasure",
                "subject_kind": "device_id",
                "subject_id": "00000000-0000-0000-0000-000000000000",
            },
            "subject_id",
            "identifies no one",
        ),
        ({"kind": "access", "subject_id": "x" * 1025}, "subject_id", "no more than 1024"),
    ],
)
def test_bad_requests_are_explained_in_the_shared_error_shape(
    body: dict[str, str], path: str, message: str
) -> None:
    response = api_for(staff()).post(URL, body, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["status"], error["code"]) == (400, "invalid")
    [field] = error["fields"]
    assert field["path"] == path
    assert message in field["message"]
    assert DataSubjectRequest.objects.count() == 0


def test_staff_file_a_request_and_follow_it(
    redis_client: Redis, django_assert_max_num_queries: Any
) -> None:
    fill(redis_client)
    api = api_for(staff())

    created = api.post(URL, {"kind": "access", "subject_id": SUBJECT}, format="json")

    assert created.status_code == 201
    body = created.json()
    assert SUBJECT not in created.content.decode()
    assert body["status"] == "pending"
    assert (body["kind"], body["subject_kind"], body["requested_by"]) == (
        "access",
        "user_id",
        "dpo",
    )
    assert created["Location"] == f"{URL}{body['id']}/"
    assert body["export_url"] is None
    assert api.get(f"{URL}{body['id']}/export/").status_code == 404

    run_request(body["id"])  # what the worker does (tested end to end below)
    for n in range(3):
        api.post(URL, {"kind": "erasure", "subject_id": f"someone-{n}"}, format="json")
    with django_assert_max_num_queries(4):
        listing = api.get(URL).json()
    detail = api.get(f"{URL}{body['id']}/").json()
    export = api.get(f"{URL}{body['id']}/export/")

    assert listing["count"] == 4
    assert [r["kind"] for r in listing["results"]] == ["erasure"] * 3 + ["access"]
    assert (detail["status"], detail["entries_scanned"], detail["entries_total"]) == ("done", 6, 6)
    assert detail["counts"] == {
        "events": 3, "telemetry": 0, "conversions": 0, "frequency_caps": 1, "user_syncs": 0,
        "ivt_counters": 0, "ivt_refunds": 0,
        "other_keys": 0,
    }  # fmt: skip
    assert detail["export_url"] == f"http://testserver{URL}{body['id']}/export/"
    assert export.status_code == 200
    assert export["Content-Disposition"] == f'attachment; filename="dsar-{body["id"]}-export.json"'
    assert len(json.loads(export.content)["events"]) == 3
    assert api.get(f"{URL}?kind=access").json()["count"] == 1


def test_a_deleted_export_is_gone_and_a_failed_request_runs_again(redis_client: Redis) -> None:
    api = api_for(staff())
    access = file(RequestKind.ACCESS)
    run_request(access.pk)
    DataSubjectRequest.objects.filter(pk=access.pk).update(export="")
    erasure = file(RequestKind.ERASURE)
    with pytest.raises(JobInterrupted):
        run_request(erasure.pk, fault=lambda step: (_ for _ in ()).throw(JobInterrupted(step)))

    gone = api.get(f"{URL}{access.pk}/export/")
    again = api.post(f"{URL}{erasure.pk}/run-again/")
    refused = api.post(f"{URL}{access.pk}/run-again/")

    assert gone.status_code == 410
    assert gone.json()["error"]["code"] == "gone"
    assert again.status_code == 202
    assert again.json()["status"] == "pending"
    assert refused.status_code == 409


# -- admin -----------------------------------------------------------------------------------

ADMIN = "/admin/compliance/datasubjectrequest/"


def admin_client() -> Client:
    get_user_model().objects.create_superuser("officer", password="pw")
    client = Client()
    assert client.login(username="officer", password="pw")
    return client


def test_the_admin_files_a_request_from_the_raw_id_and_shows_its_progress(
    redis_client: Redis,
) -> None:
    fill(redis_client)
    client = admin_client()

    form = client.get(f"{ADMIN}add/").content.decode()
    posted = client.post(
        f"{ADMIN}add/",
        {"kind": "access", "subject_kind": "user_id", "subject_id": SUBJECT, "notes": "ticket 7"},
    )

    assert 'name="subject_id"' in form
    assert posted.status_code == 302
    request = DataSubjectRequest.objects.get()
    assert (request.kind, request.notes, request.requested_by.username) == (
        "access",
        "ticket 7",
        "officer",
    )
    assert pseudonym(SUBJECT) in request.pseudonyms
    pending = client.get(ADMIN).content.decode()
    assert 'class="dsar-progress"' in pending
    assert 'data-active="true"' in pending
    assert SUBJECT not in pending

    run_request(request.pk)
    listing = client.get(ADMIN).content.decode()
    detail = client.get(f"{ADMIN}{request.pk}/change/").content.decode()
    status = client.get(f"{ADMIN}{request.pk}/status.json").json()
    export = client.get(f"{ADMIN}{request.pk}/export.json")

    assert f'href="{ADMIN}{request.pk}/export.json"' in listing
    assert 'value="6"' in listing  # the bar, full
    assert "6 of 6 stream entries" in detail
    assert SUBJECT not in listing + detail
    assert (status["status"], status["entries_scanned"], status["in_progress"]) == (
        "done",
        6,
        False,
    )
    assert len(json.loads(export.content)["events"]) == 3
    assert "deletelink" not in detail  # the record is kept


def test_the_admin_add_form_rejects_a_bad_id_and_does_not_store_it() -> None:
    client = admin_client()

    page = client.post(
        f"{ADMIN}add/",
        {"kind": "erasure", "subject_kind": "device_id",
         "subject_id": "00000000-0000-0000-0000-000000000000"},
    )  # fmt: skip

    assert page.status_code == 200
    assert "identifies no one" in page.content.decode()
    assert DataSubjectRequest.objects.count() == 0


# -- end to end ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_erasure_filed_through_the_api_is_done_by_the_worker(
    celery_worker: None, redis_client: Redis
) -> None:
    ids = fill(redis_client)
    api = api_for(staff())

    created = api.post(URL, {"kind": "erasure", "subject_id": SUBJECT}, format="json").json()

    def finished() -> dict[str, Any] | None:
        body: dict[str, Any] = api.get(f"{URL}{created['id']}/").json()
        return body if body["status"] in ("done", "failed") else None

    done = wait_for(finished, timeout=30)
    assert done["status"] == "done"
    assert done["counts"]["events_anonymised"] == 3
    assert done["counts"]["frequency_caps"] == 1
    left = stream(redis_client)
    assert {ids["other_1"], ids["anon"], ids["other_2"], ids["imp"]} <= set(left)
    assert pseudonym(SUBJECT) not in {e.u for events in left.values() for e in events}
