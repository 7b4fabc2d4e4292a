"""Whom the buyer pool calls and with what data: COPPA, consent for each buyer's GVL vendor
id, and anonymised requests (the outbound request's fields: test_outbound_privacy.py)."""

from collections.abc import Callable

from django.conf import settings

from compliance.policy import PrivacySignals
from tests.compliance.tcf_encoder import Core, VendorSection, encode_core
from tests.serving.buyer_helpers import context, counts, snap, solicit_once
from tests.serving.buyer_server import LoopbackBuyer

CONSENTED_VENDOR, UNCONSENTED_VENDOR = 77, 88


def gdpr_consent(*vendors: int) -> PrivacySignals:
    tc = encode_core(
        Core(
            purposes_consent=frozenset({1, 2, 3, 4, 7}),
            vendor_consents=VendorSection(
                max_id=settings.GVL_VENDOR_ID, ids=frozenset({settings.GVL_VENDOR_ID, *vendors})
            ),
        )
    )
    return PrivacySignals(gdpr=1, tc_string=tc)


# -- privacy ---------------------------------------------------------------------------


def test_coppa_traffic_goes_only_to_buyers_that_support_it(
    buyer: LoopbackBuyer, start_buyer: Callable[..., LoopbackBuyer]
) -> None:
    child_safe = start_buyer()

    result, stats = solicit_once(
        [snap(buyer), snap(child_safe, 2, supports_coppa=True)],
        context(privacy=PrivacySignals(coppa=1)),
    )

    assert [o.outcome for o in result.outcomes] == ["coppa", "bid"]
    assert buyer.request_count() == 0
    sent = child_safe.last.body
    assert sent["regs"]["coppa"] == 1
    assert "id" not in sent.get("user", {}) and "ifa" not in sent["device"]
    assert counts(stats)["1:coppa"] == 1


def test_a_buyer_without_consent_for_its_vendor_id_is_not_called(
    start_buyer: Callable[..., LoopbackBuyer],
) -> None:
    consented, unconsented, unlisted = start_buyer(), start_buyer(), start_buyer()
    privacy = gdpr_consent(CONSENTED_VENDOR)

    result, stats = solicit_once(
        [
            snap(consented, 1, gvl_vendor_id=CONSENTED_VENDOR),
            snap(unconsented, 2, gvl_vendor_id=UNCONSENTED_VENDOR),
            snap(unlisted, 3, gvl_vendor_id=None),
        ],
        context(privacy=privacy),
    )

    assert [(o.outcome, o.detail) for o in result.outcomes] == [
        ("bid", ""),
        ("consent", "buyer_no_purpose_2_basis"),
        ("consent", "buyer_has_no_gvl_id"),
    ]
    assert (unconsented.request_count(), unlisted.request_count()) == (0, 0)
    assert counts(stats) == {"1:request": 1, "1:bid": 1, "2:consent": 1, "3:consent": 1}
    # With consent for purposes 3 and 4 the buyer gets the ids, and the TC string.
    sent = consented.last.body
    assert sent["user"]["id"] == "user-1"
    assert sent["user"]["buyeruid"] == "buyer-uid-1"
    assert sent["user"]["consent"] == privacy.tc_string
    assert sent["device"]["ifa"] == "6d92078a-8246-4ba4-ae5b-76104861e7dc"
    assert sent["regs"]["gdpr"] == 1


def test_no_buyer_is_called_without_a_tc_string_under_gdpr(buyer: LoopbackBuyer) -> None:
    result, _ = solicit_once(
        [snap(buyer, gvl_vendor_id=CONSENTED_VENDOR)], context(privacy=PrivacySignals(gdpr=1))
    )

    assert result.outcomes[0].outcome == "consent"
    assert buyer.request_count() == 0


def test_without_id_permission_the_buyer_gets_an_anonymised_request(
    buyer: LoopbackBuyer,
) -> None:
    # Limit ad tracking: still served and sold, but no ids and coarse location.
    solicit_once([snap(buyer)], context(privacy=PrivacySignals(lmt=1)))

    sent = buyer.last.body
    assert {"id", "buyeruid"}.isdisjoint(sent.get("user", {}))
    assert "ifa" not in sent["device"]
    assert sent["device"]["ip"] == "203.0.113.0"
    assert sent["device"]["ipv6"] == "2001:db8:abcd:1200::"
    assert (sent["device"]["geo"]["lat"], sent["device"]["geo"]["lon"]) == (52.52, 13.38)


def test_with_consent_the_buyer_gets_ids_and_precise_geo(buyer: LoopbackBuyer) -> None:
    solicit_once([snap(buyer)], context())

    sent = buyer.last.body
    assert (sent["user"]["id"], sent["user"]["buyeruid"]) == ("user-1", "buyer-uid-1")
    assert sent["device"]["ifa"] == "6d92078a-8246-4ba4-ae5b-76104861e7dc"
    assert sent["device"]["ip"] == "203.0.113.77"
    assert (sent["device"]["geo"]["lat"], sent["device"]["geo"]["lon"]) == (52.516274, 13.377704)
