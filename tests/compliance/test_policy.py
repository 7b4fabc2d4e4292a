"""The policy as a table: which signals allow what, for us and for each buyer."""

from dataclasses import replace

import pytest

from compliance.gpp import UsNational
from compliance.policy import PrivacySignals, evaluate
from tests.compliance.gpp_encoder import encode_gpp, encode_usnat
from tests.compliance.tcf_encoder import Core, Restriction, VendorSection, encode_core

US = 9999  # our vendor id (the test GVL's)
BUYER, OTHER_BUYER = 101, 102
EVERYONE = VendorSection(max_id=200, ids=frozenset({BUYER, OTHER_BUYER}))


def tc(**fields: object) -> str:
    base = Core(
        purposes_consent=frozenset({1, 2, 3, 4, 7}),
        special_feature_opt_ins=frozenset({1}),
        vendor_consents=VendorSection(max_id=US, ids=frozenset({US, BUYER})),
    )
    return encode_core(replace(base, **fields))  # type: ignore[arg-type]


FULL = tc()
BASIC_ONLY = tc(purposes_consent=frozenset({1, 2}))
LI_ONLY = tc(
    purposes_consent=frozenset(),
    purposes_li_transparency=frozenset({2, 3, 4, 7}),
    vendor_consents=VendorSection(max_id=0),
    vendor_legitimate_interests=VendorSection(max_id=US, ids=frozenset({US})),
)
PURPOSES_1_2_7 = tc(purposes_consent=frozenset({1, 2, 7}))
NOT_OUR_VENDOR = tc(vendor_consents=VendorSection(max_id=200, ids=frozenset({BUYER})))
RESTRICTED_P4 = tc(restrictions=(Restriction(4, 0, ((US, US),)),))
RESTRICTED_P2 = tc(restrictions=(Restriction(2, 0, ((US, US),)),))


def usnat(**opt_outs: int) -> str:
    section = UsNational(
        version=1, sharing_notice=1, sale_opt_out_notice=1, sharing_opt_out_notice=1,
        targeted_advertising_opt_out_notice=1, sensitive_data_processing_opt_out_notice=1,
        sensitive_data_limit_use_notice=1, sale_opt_out=opt_outs.get("sale", 2),
        sharing_opt_out=opt_outs.get("sharing", 2),
        targeted_advertising_opt_out=opt_outs.get("targeted", 2),
        sensitive_data_processing=(0,) * 12, known_child_sensitive_data_consents=(0, 0),
        personal_data_consents=0, mspa_covered_transaction=1, mspa_opt_out_option_mode=0,
        mspa_service_provider_mode=0,
    )  # fmt: skip
    return encode_gpp({7: encode_usnat(section)})


@pytest.mark.parametrize(
    ("signals", "serve", "personalise", "reason"),
    [
        # GDPR
        (PrivacySignals(gdpr=1), False, False, "gdpr_no_consent"),
        (PrivacySignals(gdpr=1, tc_string="not-a-tc-string"), False, False, "gdpr_no_consent"),
        (PrivacySignals(gdpr=1, tc_string=FULL[:20]), False, False, "gdpr_no_consent"),
        (PrivacySignals(gdpr=1, tc_string=NOT_OUR_VENDOR), False, False, "gdpr_no_purpose_2"),
        (PrivacySignals(gdpr=1, tc_string=RESTRICTED_P2), False, False, "gdpr_no_purpose_2"),
        (PrivacySignals(gdpr=1, tc_string=FULL), True, True, ""),
        (PrivacySignals(gdpr=1, tc_string=PURPOSES_1_2_7), True, False, "contextual_only"),
        (PrivacySignals(gdpr=1, tc_string=BASIC_ONLY), True, False, "contextual_only"),
        (PrivacySignals(gdpr=1, tc_string=LI_ONLY), True, False, "contextual_only"),
        (PrivacySignals(gdpr=1, tc_string=RESTRICTED_P4), True, False, "contextual_only"),
        (PrivacySignals(gdpr=0, tc_string="garbage"), True, True, ""),
        # US
        (PrivacySignals(us_privacy="1YYN"), True, False, "us_privacy_opt_out"),
        (PrivacySignals(us_privacy="1YNN"), True, True, ""),
        (PrivacySignals(us_privacy="bogus"), True, True, ""),
        (PrivacySignals(gpp=usnat(sale=1), gpp_sid=(7,)), True, False, "gpp_us_opt_out"),
        (PrivacySignals(gpp=usnat(targeted=1), gpp_sid=(7,)), True, False, "gpp_us_opt_out"),
        (PrivacySignals(gpp=usnat(sale=1), gpp_sid=(8,)), True, True, ""),  # not applicable
        (PrivacySignals(gpp=usnat(), gpp_sid=(7,)), True, True, ""),
        (PrivacySignals(gpc="1"), True, False, "gpc"),
        (PrivacySignals(lmt=1), True, False, "limit_ad_tracking"),
        (PrivacySignals(coppa=1), True, False, "coppa"),
        (PrivacySignals(), True, True, ""),
    ],
)
def test_the_policy_table(
    signals: PrivacySignals, serve: bool, personalise: bool, reason: str
) -> None:
    permissions = evaluate(signals, US)

    assert (permissions.serve, permissions.personalise, permissions.reason) == (
        serve, personalise, reason,
    )  # fmt: skip
    if not personalise:
        assert not permissions.use_ids


def test_full_consent_allows_ids_measurement_and_precise_geo() -> None:
    p = evaluate(PrivacySignals(gdpr=1, tc_string=FULL), US)

    assert (p.use_ids, p.measure, p.precise_geo) == (True, True, True)
    assert p.ledger == ("gdpr=1", "tcf=valid", "p2=yes", "p34=yes")


def test_every_restriction_drops_precise_geo() -> None:
    # DESIGN.md: COPPA, LMT, GPC and US opt-outs all mean coarse geo outbound.
    assert not evaluate(PrivacySignals(coppa=1), US).precise_geo
    assert not evaluate(PrivacySignals(lmt=1), US).precise_geo
    assert not evaluate(PrivacySignals(gpc="1"), US).precise_geo
    assert not evaluate(PrivacySignals(us_privacy="1YYN"), US).precise_geo
    assert evaluate(PrivacySignals(us_privacy="1YNN"), US).precise_geo


def test_each_buyer_is_judged_with_its_own_vendor_id() -> None:
    p = evaluate(PrivacySignals(gdpr=1, tc_string=FULL), US)

    assert p.for_buyer(BUYER).call and p.for_buyer(BUYER).send_ids
    assert p.for_buyer(OTHER_BUYER).call is False
    assert p.for_buyer(OTHER_BUYER).reason == "buyer_no_purpose_2_basis"
    assert p.for_buyer(None).reason == "buyer_has_no_gvl_id"


def test_outside_gdpr_buyers_get_ids_only_when_we_may_personalise() -> None:
    free = evaluate(PrivacySignals(), US).for_buyer(None)
    opted_out = evaluate(PrivacySignals(us_privacy="1YYN"), US).for_buyer(BUYER)

    assert (free.call, free.send_ids, free.send_precise_geo) == (True, True, True)
    assert (opted_out.call, opted_out.send_ids) == (True, False)


def test_a_tc_string_inside_gpp_counts_when_gpp_sid_lists_it() -> None:
    gpp = encode_gpp({2: FULL})

    assert evaluate(PrivacySignals(gpp=gpp, gpp_sid=(2,)), US).personalise
    assert not evaluate(PrivacySignals(gpp=encode_gpp({2: NOT_OUR_VENDOR}), gpp_sid=(2,)), US).serve
