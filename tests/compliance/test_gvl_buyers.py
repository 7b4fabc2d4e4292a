"""The Global Vendor List decides for buyers (issue 13 item 11): each buyer judged by what its
vendor declares, the list loaded from a file or refreshed from a loopback URL on the beat,
the last good version kept, shown in the admin and in `?explain=1`."""

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from campaigns.models import ApiToken
from campaigns.snapshot import build_snapshot, publish_snapshot
from compliance.gvl import GvlError, load_gvl
from compliance.gvl_store import current_gvl, refresh_gvl
from compliance.models import VendorList
from compliance.policy import PrivacySignals, evaluate
from compliance.tasks import refresh_gvl_task
from compliance.tcf import RestrictionType
from serving.app import ServingApp
from serving.buyer_snapshot import vendor_claims
from serving.models import Buyer
from serving.snapshot import VendorClaims
from tests.compliance.tcf_encoder import Core, Restriction, VendorSection, encode_core
from tests.compliance.test_gvl import TEST_GVL
from tests.conftest import wait_for
from tests.serving.buyer_server import Behaviour, LoopbackBuyer
from tests.serving.test_app import ad_body, placement_key, with_client

__all__ = ["placement_key"]

US = 9999
# The test GVL: 101 claims purposes 1-4 and 7 by consent and special feature 1; 102 claims
# purpose 2 by legitimate interest (flexible) and nothing for 3 or 4; 103 claims 1-4 by
# consent, special features 1 and 2; 104 was deleted in 2025; 4242 is not listed.
ALPHA, BETA, GAMMA, DELTA, UNLISTED = 101, 102, 103, 104, 4242
NOW = datetime(2026, 2, 1, tzinfo=UTC)
GVL = load_gvl(TEST_GVL)
EVERY_VENDOR = frozenset({US, ALPHA, BETA, GAMMA, DELTA, UNLISTED})


def tc(**fields: Any) -> str:
    core = Core(
        purposes_consent=frozenset({1, 2, 3, 4, 7}),
        special_feature_opt_ins=frozenset({1}),
        vendor_consents=VendorSection(max_id=US, ids=EVERY_VENDOR),
    )
    return encode_core(Core(**{**core.__dict__, **fields}))


def permission(tc_string: str, vendor: int, claims: VendorClaims | None = None) -> Any:
    permissions = evaluate(PrivacySignals(gdpr=1, tc_string=tc_string), US)
    return permissions.for_buyer(vendor, claims or vendor_claims(GVL, vendor, NOW))


def test_consent_purposes_need_consent_and_li_purposes_need_li() -> None:
    consent_only = tc()
    # Alpha declares purpose 2 by consent: consent is enough; Beta declares it by LI only.
    assert permission(consent_only, ALPHA).call
    beta = permission(consent_only, BETA)
    assert (beta.call, beta.reason) == (False, "buyer_no_purpose_2_basis")
    # Without a GVL, the TC string alone would have called Beta (consent or LI).
    assert evaluate(PrivacySignals(gdpr=1, tc_string=consent_only), US).for_buyer(BETA).call

    li_only = tc(
        purposes_consent=frozenset({1}),
        purposes_li_transparency=frozenset({2}),
        vendor_legitimate_interests=VendorSection(max_id=US, ids=EVERY_VENDOR),
    )
    assert permission(li_only, BETA).call
    assert not permission(li_only, ALPHA).call  # it declared consent, not LI


def test_a_restriction_switches_only_a_flexible_purpose() -> None:
    def require(kind: RestrictionType, vendor: int) -> str:
        return tc(restrictions=(Restriction(2, int(kind), ((vendor, vendor),)),))

    # Beta's purpose 2 is flexible: "require consent" makes consent its basis.
    assert permission(require(RestrictionType.REQUIRE_CONSENT, BETA), BETA).call
    # Alpha's is not flexible: "require LI" leaves it no basis at all.
    assert not permission(require(RestrictionType.REQUIRE_LEGITIMATE_INTEREST, ALPHA), ALPHA).call
    assert not permission(require(RestrictionType.NOT_ALLOWED, ALPHA), ALPHA).call


def test_ids_need_declared_consent_purposes_3_and_4() -> None:
    assert permission(tc(), ALPHA).send_ids
    # Beta does not declare 3 and 4: called with purpose 2 by consent, but never gets ids.
    beta_by_consent = tc(restrictions=(Restriction(2, 1, ((BETA, BETA),)),))
    beta = permission(beta_by_consent, BETA)
    assert beta.call and not beta.send_ids


def test_precise_geo_needs_special_feature_1_opted_in_and_declared() -> None:
    assert permission(tc(), ALPHA).send_precise_geo
    assert not permission(tc(special_feature_opt_ins=frozenset()), ALPHA).send_precise_geo
    undeclared = VendorClaims(150, True, purposes=frozenset({1, 2, 3, 4}))
    p = permission(tc(), ALPHA, undeclared)
    assert p.send_ids and not p.send_precise_geo


def test_a_vendor_absent_from_the_gvl_gets_nothing() -> None:
    for vendor in (UNLISTED, DELTA):  # never listed; deleted before NOW
        p = permission(tc(), vendor)
        assert (p.call, p.send_ids, p.reason) == (False, False, "buyer_not_in_gvl")


def test_outside_gdpr_the_gvl_is_not_consulted() -> None:
    p = evaluate(PrivacySignals(), US).for_buyer(UNLISTED, vendor_claims(GVL, UNLISTED, NOW))
    assert p.call and p.send_ids


def test_the_explanation_names_each_basis() -> None:
    permissions = evaluate(PrivacySignals(gdpr=1, tc_string=tc()), US)
    explained = permissions.explain_buyer(BETA, vendor_claims(GVL, BETA, NOW))
    assert explained["call"] is False
    assert explained["bases"] == {
        "p2": "no_li", "p3": "not_declared", "p4": "not_declared", "sf1": "undeclared",
    }  # fmt: skip


# -- loading the list -----------------------------------------------------------------------


def gvl_json(version: int, **vendor_101: Any) -> bytes:
    data = json.loads(TEST_GVL.read_text())
    data["vendorListVersion"] = version
    data["vendors"]["101"].update(vendor_101)
    return json.dumps(data).encode()


@pytest.fixture
def gvl_server() -> Iterator[dict[str, Any]]:
    state: dict[str, Any] = {"status": 200, "body": gvl_json(151)}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(state["status"])
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(state["body"])

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/vendor-list.json"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.django_db
def test_the_snapshot_carries_each_buyers_declarations(settings: Any) -> None:
    Buyer.objects.create(name="alpha", endpoint="http://127.0.0.1:9/a", gvl_vendor_id=ALPHA)
    Buyer.objects.create(name="nobody", endpoint="http://127.0.0.1:9/b", gvl_vendor_id=UNLISTED)
    assert [b.gvl for b in build_snapshot(1, timezone.now()).buyers] == [None, None]
    settings.GVL_PATH = str(TEST_GVL)
    alpha, nobody = build_snapshot(2, timezone.now()).buyers
    assert alpha.gvl == VendorClaims(
        150, True, purposes=frozenset({1, 2, 3, 4, 7}), special_features=frozenset({1})
    )
    assert nobody.gvl == VendorClaims(150, False)


@pytest.mark.django_db
def test_refresh_keeps_the_newest_good_version(gvl_server: dict[str, Any], settings: Any) -> None:
    settings.GVL_PATH = str(TEST_GVL)
    assert current_gvl().vendor_list_version == 150  # type: ignore[union-attr]
    stored = refresh_gvl(gvl_server["url"])
    assert stored is not None and stored.version == 151
    assert current_gvl().vendor_list_version == 151  # type: ignore[union-attr]
    # The same version again, an older one, a broken one, a server error: nothing changes.
    assert refresh_gvl(gvl_server["url"]) is None
    gvl_server["body"] = gvl_json(149)
    assert refresh_gvl(gvl_server["url"]) is None
    gvl_server["body"] = gvl_json(152, purposes="all")
    with pytest.raises(GvlError, match=r"vendors\['101'\].purposes must be a list"):
        refresh_gvl(gvl_server["url"])
    gvl_server["status"] = 503
    with pytest.raises(GvlError, match="HTTP 503"):
        refresh_gvl(gvl_server["url"])
    assert list(VendorList.objects.values_list("version", flat=True)) == [151]
    assert current_gvl().vendor_list_version == 151  # type: ignore[union-attr]


def test_the_beat_task_loads_the_list(
    celery_worker: None, gvl_server: dict[str, Any], settings: Any
) -> None:
    settings.GVL_URL = gvl_server["url"]
    refresh_gvl_task.delay()
    stored = wait_for(lambda: VendorList.objects.first())
    assert (stored.version, stored.vendor_count) == (151, 5)


@pytest.mark.django_db
def test_the_admin_shows_the_version_and_each_buyers_declarations(settings: Any) -> None:
    settings.GVL_PATH = str(TEST_GVL)
    beta = Buyer.objects.create(name="beta", endpoint="http://127.0.0.1:9/", gvl_vendor_id=BETA)
    staff = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw")
    client = Client()
    client.force_login(staff)
    versions = client.get("/admin/compliance/vendorlist/").content.decode()
    assert "Buyers are judged by GVL version 150." in versions
    page = client.get(f"/admin/serving/buyer/{beta.pk}/change/").content.decode()
    assert (
        "GVL v150, Buyer Beta Exchange: consent purposes 1; legitimate-interest purposes "
        "2, 7, 9, 10; flexible 2, 7, 9, 10; special features none"
    ) in page


# -- serving --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_serving_calls_only_the_buyers_the_gvl_allows(placement_key: str, settings: Any) -> None:
    settings.GVL_PATH = str(TEST_GVL)
    with (
        LoopbackBuyer(Behaviour(bid={"price": "9.00"})) as alpha,
        LoopbackBuyer(Behaviour(bid={"price": "9.00"})) as beta,
        LoopbackBuyer(Behaviour(bid={"price": "9.00"})) as unlisted,
    ):
        for name, server, vendor in (("alpha", alpha, ALPHA), ("beta", beta, BETA),
                                     ("unlisted", unlisted, UNLISTED)):  # fmt: skip
            Buyer.objects.create(
                name=name, endpoint=server.endpoint, gvl_vendor_id=vendor, timeout_ms=500
            )
        publish_snapshot()
        body = ad_body(placement_key, regs={"gdpr": 1}, user={"consent": tc()}, tmax=800)

        async def scenario(client: httpx.AsyncClient, app: ServingApp) -> httpx.Response:
            return await client.post("/v1/ad", json=body)

        response = with_client(scenario)
        assert response.status_code == 200
        assert [len(alpha.requests), len(beta.requests), len(unlisted.requests)] == [1, 0, 0]
        # Alpha may have ids and precise geo: it declares purposes 3, 4 and special feature 1.
        assert alpha.last.body["user"]["consent"] == tc()


@pytest.mark.django_db
def test_explain_shows_each_buyers_decision(placement_key: str, settings: Any) -> None:
    settings.GVL_PATH = str(TEST_GVL)
    staff = get_user_model().objects.create_user("ops", is_staff=True)
    _, key = ApiToken.issue(user=staff, name="explain")
    Buyer.objects.create(name="alpha", endpoint="http://127.0.0.1:9/", gvl_vendor_id=ALPHA)
    Buyer.objects.create(name="unlisted", endpoint="http://127.0.0.1:9/", gvl_vendor_id=UNLISTED)
    publish_snapshot()

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> Any:
        body = ad_body(placement_key, regs={"gdpr": 1}, user={"consent": tc()})
        headers = {"authorization": f"Bearer {key}"}
        return (await client.post("/v1/ad?explain=1", json=body, headers=headers)).json()

    alpha, unlisted = with_client(scenario)["buyers"]
    assert alpha["call"] and alpha["send_ids"] and alpha["send_precise_geo"]
    assert alpha["gvl_version"] == 150
    assert alpha["bases"] == {"p2": "consent", "p3": "consent", "p4": "consent", "sf1": "declared"}
    assert (unlisted["call"], unlisted["reason"]) == (False, "buyer_not_in_gvl")
    assert unlisted["bases"] == {"gvl": "absent"}
