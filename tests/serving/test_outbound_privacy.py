"""What each external buyer receives: built from that buyer's own permission only (issue 13
item 8), COPPA stripping (item 6) and extended ids (item 10), against real loopback buyers."""

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings

from compliance.policy import PrivacySignals
from compliance.tcf import RestrictionType
from tests.compliance.tcf_encoder import Core, Restriction, VendorSection, encode_core
from tests.serving.buyer_helpers import context, snap, solicit_once
from tests.serving.buyer_server import LoopbackBuyer
from tests.serving.openrtb_helpers import context_of, error_of

OTHER_VENDOR, LI_ONLY_VENDOR = 77, 91
EIDS = [
    {"source": "id5-sync.com", "uids": [{"id": "ID5*abc", "atype": 1}]},
    {"source": "liveramp.com", "uids": [{"id": "XY123", "atype": 3, "ext": {"rtiPartner": "i"}}]},
]
PRECISE_IP, PRECISE_LATLON = "203.0.113.77", (52.516274, 13.377704)


def tc_string(*, our_purpose_4_restricted: bool = False) -> str:
    """Consent for purposes 1-4 and 7 and precise geo, for us and OTHER_VENDOR; only a
    legitimate interest (purpose 2) for LI_ONLY_VENDOR."""
    ours = settings.GVL_VENDOR_ID
    restrictions = (
        (Restriction(4, int(RestrictionType.NOT_ALLOWED), ((ours, ours),)),)
        if our_purpose_4_restricted
        else ()
    )
    return encode_core(
        Core(
            purposes_consent=frozenset({1, 2, 3, 4, 7}),
            purposes_li_transparency=frozenset({2}),
            special_feature_opt_ins=frozenset({1}),
            vendor_consents=VendorSection(max_id=10000, ids=frozenset({ours, OTHER_VENDOR})),
            vendor_legitimate_interests=VendorSection(
                max_id=10000, ids=frozenset({LI_ONLY_VENDOR})
            ),
            restrictions=restrictions,
        )
    )


def sent_to(buyer: LoopbackBuyer, privacy: PrivacySignals, **ctx: Any) -> dict[str, Any]:
    solicit_once([snap(buyer, gvl_vendor_id=OTHER_VENDOR)], context(privacy, **ctx))
    body: dict[str, Any] = buyer.last.body
    return body


def test_our_purpose_4_restriction_does_not_anonymise_another_buyer(buyer: LoopbackBuyer) -> None:
    privacy = PrivacySignals(gdpr=1, tc_string=tc_string(our_purpose_4_restricted=True))

    sent = sent_to(buyer, privacy, eids=tuple(EIDS))

    # The other vendor consented to everything: ip, geo, ids and eids alike, all precise.
    device = sent["device"]
    assert device["ip"] == PRECISE_IP
    assert device["ipv6"] == "2001:db8:abcd:12ff::1"
    assert (device["geo"]["lat"], device["geo"]["lon"]) == PRECISE_LATLON
    assert device["ifa"] == "6d92078a-8246-4ba4-ae5b-76104861e7dc"
    assert (sent["user"]["id"], sent["user"]["buyeruid"]) == ("user-1", "buyer-uid-1")
    assert sent["user"]["eids"] == EIDS


def test_a_buyer_without_consent_gets_nothing_personal_though_we_have_it(
    buyer: LoopbackBuyer,
) -> None:
    privacy = PrivacySignals(gdpr=1, tc_string=tc_string())

    solicit_once([snap(buyer, gvl_vendor_id=LI_ONLY_VENDOR)], context(privacy, eids=tuple(EIDS)))

    # Called on its purpose-2 legitimate interest, without consent for 3 and 4: consistently
    # anonymised, whatever our own consent allows.
    sent = buyer.last.body
    device = sent["device"]
    assert device["ip"] == "203.0.113.0"
    assert device["ipv6"] == "2001:db8:abcd:1200::"
    assert (device["geo"]["lat"], device["geo"]["lon"]) == (52.52, 13.38)
    assert "ifa" not in device
    assert sent["user"] == {"consent": privacy.tc_string}


def test_coppa_removes_coordinates_city_zip_and_every_id(
    start_buyer: Callable[..., LoopbackBuyer],
) -> None:
    child_safe = start_buyer()
    geo = context().geo
    geo.city, geo.zip, geo.region = "Berlin", "10117", "DE-BE"

    solicit_once(
        [snap(child_safe, supports_coppa=True)],
        context(PrivacySignals(coppa=1), geo=geo, eids=tuple(EIDS), segments=("s1",)),
    )

    sent = child_safe.last.body
    assert sent["regs"]["coppa"] == 1
    assert sent["device"]["geo"] == {"country": "DEU", "region": "BE"}
    assert sent["device"]["ip"] == "203.0.113.0"
    assert "ifa" not in sent["device"]
    assert "user" not in sent  # no id, buyeruid, eids or segments; no TC string was sent


@pytest.mark.parametrize(
    "user",
    [
        {"eids": EIDS},
        {"ext": {"eids": EIDS}},
        # 2.6 wins over 2.5 when both are there
        {"eids": EIDS, "ext": {"eids": [{"source": "old.example", "uids": [{"id": "x"}]}]}},
    ],
)
def test_eids_are_read_from_the_26_and_25_locations(user: dict[str, Any]) -> None:
    body = {"id": "r", "imp": [{"id": "1", "tagid": "k", "banner": {"w": 1, "h": 1}}], "user": user}
    ctx = context_of(json.dumps(body).encode(), request_id="x", now=0.0, fx={})

    assert list(ctx.eids) == EIDS


@pytest.mark.parametrize(
    ("user", "path"),
    [
        ({"eids": [{"uids": [{"id": "a"}]}]}, "$.user.eids[0].source"),
        ({"ext": {"eids": [{"source": "s", "uids": [{"atype": 1}]}]}}, "$.user.ext.eids"),
        ({"ext": {"eids": "nope"}}, "$.user.ext.eids"),
    ],
)
def test_malformed_eids_are_refused_naming_where(user: dict[str, Any], path: str) -> None:
    body = {"id": "r", "imp": [{"id": "1", "tagid": "k", "banner": {"w": 1, "h": 1}}], "user": user}

    assert error_of(json.dumps(body).encode(), request_id="x", now=0.0, fx={}).path == path
