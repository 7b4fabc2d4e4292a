"""User sync (issue 13 item 9): /v1/sync redirects to each buyer's sync URL only with consent,
the buyer's redirect back fills the sync table on the real Redis, bid requests to that buyer
carry its uid, and data-subject requests and retention cover the table."""

import time
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest
from django.conf import settings
from redis import Redis

from campaigns.snapshot import publish_snapshot
from compliance.dsar import run_request
from compliance.models import DataSubjectRequest, RequestKind
from compliance.pseudonym import Pseudonymiser
from compliance.retention import purge_personal_data
from compliance.tcf import RestrictionType
from serving.app import ServingApp
from serving.keys import RedisKeys
from serving.models import Buyer
from tests.compliance.tcf_encoder import Core, Restriction, VendorSection, encode_core
from tests.compliance.test_dsar import file
from tests.serving.buyer_server import Behaviour, LoopbackBuyer
from tests.serving.test_app import ad_body, placement_key, with_client

__all__ = ["placement_key"]

pytestmark = pytest.mark.django_db

VENDOR = 77
READER = "reader-42"
MACROS = (
    "gdpr=${GDPR}&gdpr_consent=${GDPR_CONSENT}&us_privacy=${US_PRIVACY}&gpp=${GPP}"
    "&gpp_sid=${GPP_SID}&redirect=${REDIRECT}"
)


def keys() -> RedisKeys:
    return RedisKeys(settings.REDIS_KEY_PREFIX)


def pseudonym(raw: str) -> str:
    return Pseudonymiser.from_settings().pseudonym(raw, time.time())


def tc(**fields: Any) -> str:
    ours = settings.GVL_VENDOR_ID
    base: dict[str, Any] = {
        "purposes_consent": frozenset({1, 2, 3, 4, 7}),
        "vendor_consents": VendorSection(max_id=10000, ids=frozenset({ours, VENDOR})),
    }
    return encode_core(Core(**{**base, **fields}))


def make_buyer(server: LoopbackBuyer, name: str = "dsp", **fields: Any) -> Buyer:
    fields.setdefault("sync_url", f"{server.base_url}/usersync?{MACROS}")
    return Buyer.objects.create(
        name=name, endpoint=server.endpoint, gvl_vendor_id=VENDOR, timeout_ms=500, **fields
    )


def sync_query(buyer: Buyer, **params: str) -> dict[str, str]:
    return {"buyer": str(buyer.pk), "uid": READER, **params}


def test_a_full_sync_then_the_buyer_gets_its_uid(placement_key: str, redis_client: Redis) -> None:
    consent = tc()
    with LoopbackBuyer(Behaviour(bid={"price": "9.00"})) as server, LoopbackBuyer() as other:
        buyer = make_buyer(server)
        Buyer.objects.create(name="other", endpoint=other.endpoint, gvl_vendor_id=VENDOR,
                             timeout_ms=500)  # fmt: skip
        publish_snapshot()

        async def scenario(client: httpx.AsyncClient, app: ServingApp) -> Any:
            params = sync_query(buyer, gdpr="1", gdpr_consent=consent, gpp="DBABM",
                                gpp_sid="2")  # fmt: skip
            first = await client.get("/v1/sync", params=params)
            location = first.headers["location"]
            redirect = parse_qs(urlsplit(location).query)["redirect"][0]
            back = urlsplit(redirect.replace("$UID", "dsp-uid-1"))
            second = await client.get(f"{back.path}?{back.query}")
            replay = await client.get(f"{back.path}?{back.query}")
            body = ad_body(placement_key, regs={"gdpr": 1}, user={"id": READER, "consent": consent},
                           tmax=800)  # fmt: skip
            ad = await client.post("/v1/ad", json=body)
            return first, location, second, replay, ad

        first, location, second, replay, ad = with_client(scenario)

    assert first.status_code == 302
    sent = parse_qs(urlsplit(location).query)
    assert (sent["gdpr"], sent["gdpr_consent"], sent["gpp"], sent["gpp_sid"]) == (
        ["1"],
        [consent],
        ["DBABM"],
        ["2"],
    )
    assert "us_privacy" not in sent  # empty: parse_qs drops blank values
    assert unquote(location).count("/v1/sync/return?s=") == 1
    assert READER not in location and pseudonym(READER) not in location
    assert (second.status_code, second.headers["content-type"]) == (200, "image/gif")
    assert replay.status_code == 410  # a nonce is used once
    table = keys().sync(pseudonym(READER))
    assert redis_client.hgetall(table) == {str(buyer.pk).encode(): b"dsp-uid-1"}
    assert 0 < int(redis_client.ttl(table)) <= settings.SYNC_TTL_SECONDS
    assert ad.status_code == 200
    assert server.last.body["user"]["buyeruid"] == "dsp-uid-1"
    assert "buyeruid" not in other.last.body["user"]  # another buyer's uid is its own


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"gdpr": "1"}, "gdpr_no_consent"),
        ({"us_privacy": "1YYN"}, "us_privacy_opt_out"),
        ({"coppa": "1"}, "coppa"),
        ({"gdpr": "1", "gdpr_consent": tc(purposes_consent=frozenset({1, 2}))}, "contextual_only"),
        (
            {
                "gdpr": "1",
                "gdpr_consent": tc(
                    restrictions=(
                        Restriction(1, int(RestrictionType.NOT_ALLOWED), ((VENDOR, VENDOR),)),
                    )
                ),
            },
            "buyer_no_purpose_1_consent",
        ),
        ({"uid": ""}, "no_user_id"),
    ],
)
def test_no_sync_without_consent_for_ids_for_us_and_the_buyer(
    placement_key: str, redis_client: Redis, params: dict[str, str], reason: str
) -> None:
    with LoopbackBuyer() as server:
        buyer = make_buyer(server)
        publish_snapshot()
        # An earlier sync of this user with this buyer is forgotten when consent is not there.
        redis_client.hset(keys().sync(pseudonym(READER)), str(buyer.pk), "old-uid")

        async def scenario(client: httpx.AsyncClient, app: ServingApp) -> httpx.Response:
            response = await client.get("/v1/sync", params=sync_query(buyer, **params))
            await app.sink.drain()
            return response

        response = with_client(scenario)
    assert (response.status_code, response.headers["content-type"]) == (200, "image/gif")
    assert response.headers["x-no-sync-reason"] == reason
    assert "location" not in response.headers
    if params.get("uid", READER):
        assert redis_client.hgetall(keys().sync(pseudonym(READER))) == {}


def test_the_return_leg_refuses_what_is_not_a_sync(placement_key: str) -> None:
    with LoopbackBuyer() as server:
        buyer = make_buyer(server)
        unsynced = Buyer.objects.create(name="plain", endpoint=server.endpoint)
        publish_snapshot()

        async def scenario(client: httpx.AsyncClient, app: ServingApp) -> list[httpx.Response]:
            first = await client.get("/v1/sync", params=sync_query(buyer))
            redirect = parse_qs(urlsplit(first.headers["location"]).query)["redirect"][0]
            nonce = parse_qs(urlsplit(redirect).query)["s"][0]
            return [
                await client.get("/v1/sync/return", params={"s": "nope", "uid": "x"}),
                await client.get("/v1/sync/return", params={"s": "0" * 32, "uid": "x"}),
                await client.get("/v1/sync/return", params={"s": nonce, "uid": "$UID"}),
                await client.get("/v1/sync", params={"buyer": str(unsynced.pk), "uid": READER}),
                await client.get("/v1/sync", params={"buyer": "x", "uid": READER}),
                await client.get("/v1/sync", params=sync_query(buyer, gpp_sid="a")),
            ]

        bad_nonce, unknown, unreplaced, plain, junk, bad_sid = with_client(scenario)
    assert bad_nonce.status_code == 400 and "`s`" in bad_nonce.json()["detail"]
    assert unknown.status_code == 410
    assert unreplaced.status_code == 400 and "unreplaced macro" in unreplaced.json()["detail"]
    assert plain.status_code == 400 and "not a buyer that syncs" in plain.json()["detail"]
    assert junk.status_code == 400
    assert bad_sid.status_code == 400 and "gpp_sid" in bad_sid.json()["detail"]


def test_the_sync_url_is_validated_on_the_buyer() -> None:
    from django.core.exceptions import ValidationError

    buyer = Buyer(name="x", endpoint="https://dsp.example/bid", sync_url="ftp://dsp.example/s")
    with pytest.raises(ValidationError) as raised:
        buyer.full_clean()
    assert "sync_url" in raised.value.message_dict


def test_data_subject_requests_export_and_erase_the_sync_table(redis_client: Redis) -> None:
    mine, other = keys().sync(pseudonym("user-4711")), keys().sync(pseudonym("user-0815"))
    redis_client.hset(mine, mapping={"3": "dsp-uid-1", "4": "ssp-uid-9"})
    redis_client.hset(other, mapping={"3": "someone-else"})
    in_flight = keys().sync_state("a" * 32)
    redis_client.set(in_flight, f"{pseudonym('user-4711')}|3", ex=600)

    access = file(RequestKind.ACCESS)
    assert run_request(access.pk) == "done"
    access.refresh_from_db()
    assert '"dsp-uid-1"' in access.export and "someone-else" not in access.export
    assert access.counts["user_syncs"] == 1

    erasure = file(RequestKind.ERASURE)
    run_request(erasure.pk)
    erasure = DataSubjectRequest.objects.get(pk=erasure.pk)
    assert erasure.counts["user_syncs"] == 2  # the table and the sync in flight
    assert not redis_client.exists(mine) and not redis_client.exists(in_flight)
    assert redis_client.hgetall(other) == {b"3": b"someone-else"}


def test_retention_gives_a_sync_table_without_expiry_one(redis_client: Redis) -> None:
    table = keys().sync(pseudonym(READER))
    redis_client.hset(table, "3", "dsp-uid-1")
    assert purge_personal_data().syncs_given_expiry == 1
    assert 0 < int(redis_client.ttl(table)) <= settings.SYNC_TTL_SECONDS
