"""TC strings built by our own encoder (tests/compliance/tcf_encoder.py), decoded back."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compliance.tcf import DecodeError, RestrictionType, TCString, VendorIds, decode_tc_string
from tests.compliance.tcf_encoder import (
    Core,
    PublisherTC,
    Restriction,
    VendorSection,
    encode_core,
    encode_publisher_tc,
    encode_tc_string,
    encode_vendor_segment,
)

OUR_VENDOR = 9999
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FULL = Core(
    created=datetime(2025, 6, 3, 12, 30, 15, 300_000, tzinfo=UTC),
    last_updated=datetime(2025, 6, 4, tzinfo=UTC),
    cmp_id=4095,
    cmp_version=17,
    consent_screen=63,
    consent_language="FR",
    vendor_list_version=143,
    tcf_policy_version=5,
    special_feature_opt_ins=frozenset({1}),
    purposes_consent=frozenset({1, 2, 3, 4, 7, 24}),
    purposes_li_transparency=frozenset({2, 7, 10}),
    publisher_cc="FR",
    vendor_consents=VendorSection(OUR_VENDOR, ranges=((1, 40), (755, 755), (OUR_VENDOR, 9999))),
    vendor_legitimate_interests=VendorSection(12, ids=frozenset({2, 3, 12})),
    restrictions=(
        Restriction(2, 0, ((32, 32), (100, 120))),
        Restriction(7, 1, ((1, 5),)),
        Restriction(10, 2, ((OUR_VENDOR, OUR_VENDOR),)),
    ),
)
FULL_STRING = encode_tc_string(
    FULL,
    disclosed=VendorSection(20, ids=frozenset({1, 2, 3, 20})),
    allowed=VendorSection(OUR_VENDOR, ranges=((OUR_VENDOR, OUR_VENDOR),)),
    publisher_tc=PublisherTC(
        purposes_consent=frozenset({1}),
        purposes_li_transparency=frozenset({7}),
        num_custom_purposes=3,
        custom_purposes_consent=frozenset({1, 3}),
        custom_purposes_li_transparency=frozenset({2}),
    ),
)


def test_every_core_field_round_trips() -> None:
    tc = decode_tc_string(FULL_STRING)

    assert tc.version == 2
    assert (tc.created, tc.last_updated) == (FULL.created, FULL.last_updated)
    assert (tc.cmp_id, tc.cmp_version, tc.consent_screen) == (4095, 17, 63)
    assert (tc.consent_language, tc.publisher_cc) == ("FR", "FR")
    assert (tc.vendor_list_version, tc.tcf_policy_version) == (143, 5)
    assert (tc.is_service_specific, tc.use_non_standard_texts) == (True, False)
    assert tc.special_feature_opt_ins == {1}
    assert tc.purposes_consent == {1, 2, 3, 4, 7, 24}
    assert tc.purposes_li_transparency == {2, 7, 10}
    assert tc.purpose_one_treatment is False


def test_range_and_bitfield_vendor_sections_round_trip() -> None:
    tc = decode_tc_string(FULL_STRING)

    assert tc.vendor_consents == VendorIds(OUR_VENDOR, ((1, 40), (755, 755), (9999, 9999)))
    assert tc.vendor_consent(OUR_VENDOR) and tc.vendor_consent(40) and not tc.vendor_consent(41)
    assert len(tc.vendor_consents) == 42
    assert tc.vendor_legitimate_interests == VendorIds(12, ((2, 3), (12, 12)))
    assert tc.vendor_li(12) and not tc.vendor_li(OUR_VENDOR)


def test_both_encodings_of_one_set_decode_equal() -> None:
    as_bits = Core(vendor_consents=VendorSection(10, ids=frozenset({1, 2, 3, 7})))
    as_ranges = Core(vendor_consents=VendorSection(10, ranges=((7, 7), (1, 2), (2, 3))))

    assert decode_tc_string(encode_core(as_bits)) == decode_tc_string(encode_core(as_ranges))


def test_restrictions_round_trip() -> None:
    tc = decode_tc_string(FULL_STRING)

    assert tc.restriction(2, 32) == RestrictionType.NOT_ALLOWED
    assert tc.restriction(2, 110) == RestrictionType.NOT_ALLOWED
    assert tc.restriction(2, 121) is None
    assert tc.restriction(7, 3) == RestrictionType.REQUIRE_CONSENT
    assert tc.restriction(10, OUR_VENDOR) == RestrictionType.REQUIRE_LEGITIMATE_INTEREST
    assert tc.restriction(3, OUR_VENDOR) is None


def test_conflicting_consent_and_li_requirements_mean_not_allowed() -> None:
    core = Core(restrictions=(Restriction(2, 1, ((1, 10),)), Restriction(2, 2, ((5, 5),))))
    tc = decode_tc_string(encode_core(core))

    assert tc.restriction(2, 4) == RestrictionType.REQUIRE_CONSENT
    assert tc.restriction(2, 5) == RestrictionType.NOT_ALLOWED


def test_optional_segments_round_trip() -> None:
    tc = decode_tc_string(FULL_STRING)

    assert tc.disclosed_vendors == VendorIds(20, ((1, 3), (20, 20)))
    assert tc.allowed_vendors == VendorIds(OUR_VENDOR, ((OUR_VENDOR, OUR_VENDOR),))
    assert tc.publisher_tc is not None
    assert tc.publisher_tc.purposes_consent == {1}
    assert tc.publisher_tc.purposes_li_transparency == {7}
    assert tc.publisher_tc.num_custom_purposes == 3
    assert tc.publisher_tc.custom_purposes_consent == {1, 3}
    assert tc.publisher_tc.custom_purposes_li_transparency == {2}


def test_optional_segments_may_come_in_any_order() -> None:
    core, disclosed, allowed, publisher = FULL_STRING.split(".")

    reordered = decode_tc_string(".".join([core, publisher, allowed, disclosed]))

    assert reordered == decode_tc_string(FULL_STRING)


def test_every_truncation_is_rejected_or_is_a_whole_shorter_string() -> None:
    segments = FULL_STRING.split(".")
    boundaries = {len(".".join(segments[:count])) for count in range(1, len(segments) + 1)}
    for cut in range(len(FULL_STRING)):
        if cut in boundaries:
            assert decode_tc_string(FULL_STRING[:cut]).version == 2
        else:
            with pytest.raises(DecodeError):
                decode_tc_string(FULL_STRING[:cut])


@pytest.mark.parametrize(
    ("core", "reason"),
    [
        (Core(version=1), "version 1 is not supported"),
        (Core(version=3), "version 3 is not supported"),
        (Core(vendor_consents=VendorSection(10, ranges=((5, 4),))), "starts at 5 after its end 4"),
        (Core(vendor_consents=VendorSection(10, ranges=((0, 3),))), "vendor id 0 does not exist"),
        (Core(vendor_consents=VendorSection(10, ranges=((9, 11),))), "11 is above MaxVendorId 10"),
        (Core(vendor_legitimate_interests=VendorSection(2, ranges=((3, 3),))), "VendorLegit"),
        (Core(restrictions=(Restriction(2, 3, ((1, 1),)),)), "restriction type 3 is undefined"),
        (Core(restrictions=(Restriction(0, 0, ((1, 1),)),)), "purpose id 0 does not exist"),
        (Core(restrictions=(Restriction(2, 0, ((9, 8),)),)), "starts at 9 after its end 8"),
        (Core(consent_language="E["), "ConsentLanguage 26 is not a letter"),
    ],
)
def test_invalid_field_values_are_rejected(core: Core, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode_tc_string(encode_core(core))


@pytest.mark.parametrize("segment_type", [0, 4, 5, 6, 7])
def test_unknown_segment_types_are_rejected(segment_type: int) -> None:
    segment = encode_vendor_segment(segment_type, VendorSection(3, ids=frozenset({1})))

    with pytest.raises(DecodeError, match=f"unknown segment type {segment_type}"):
        decode_tc_string(f"{encode_core(Core())}.{segment}")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "the TC string is empty"),
        (encode_core(Core()) + ".", "segment 2 is empty"),
        (encode_core(Core()) + "=", "'=' at position"),
        (encode_core(Core()).replace("A", "+", 1), "'\\+' at position"),
        (encode_core(Core()) + " ", "' ' at position"),
        (encode_core(Core()) + "B", "core segment: unexpected data after the last field"),
    ],
)
def test_malformed_text_is_rejected(text: str, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode_tc_string(text)


def test_extra_zero_padding_is_accepted() -> None:
    text = encode_core(Core())

    assert decode_tc_string(text + "AAAA") == decode_tc_string(text)


def test_a_repeated_segment_type_is_rejected() -> None:
    segment = encode_publisher_tc(PublisherTC())

    with pytest.raises(DecodeError, match="segment 3 repeats segment type 3"):
        decode_tc_string(f"{encode_core(Core())}.{segment}.{segment}")


def test_a_huge_range_costs_nothing_to_decode() -> None:
    everyone = Core(vendor_consents=VendorSection(65535, ranges=((1, 65535),)))
    tc = decode_tc_string(encode_core(everyone))

    assert tc.vendor_consents.ranges == ((1, 65535),)
    assert tc.vendor_consent(65535) and not tc.vendor_consent(0)


# Property: any valid field values survive encoding and decoding.
purpose_sets = st.frozensets(st.integers(1, 24))
deciseconds = st.integers(0, 2**36 - 1)
letters = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2)


@st.composite
def vendor_sections(draw: st.DrawFn) -> VendorSection:
    max_id = draw(st.integers(0, 400))
    if max_id == 0:
        return VendorSection(0)
    if draw(st.booleans()):
        return VendorSection(max_id, ids=draw(st.frozensets(st.integers(1, max_id))))
    spans = draw(st.lists(st.tuples(st.integers(1, max_id), st.integers(0, 30)), max_size=8))
    return VendorSection(max_id, ranges=tuple((s, min(s + w, max_id)) for s, w in spans))


@st.composite
def restrictions(draw: st.DrawFn) -> Restriction:
    spans = draw(st.lists(st.tuples(st.integers(1, 65000), st.integers(0, 500)), max_size=4))
    return Restriction(
        purpose_id=draw(st.integers(1, 63)),
        restriction_type=draw(st.integers(0, 2)),
        ranges=tuple((s, min(s + w, 65535)) for s, w in spans),
    )


@st.composite
def cores(draw: st.DrawFn) -> Core:
    return Core(
        created=EPOCH + timedelta(milliseconds=100 * draw(deciseconds)),
        last_updated=EPOCH + timedelta(milliseconds=100 * draw(deciseconds)),
        cmp_id=draw(st.integers(0, 4095)),
        cmp_version=draw(st.integers(0, 4095)),
        consent_screen=draw(st.integers(0, 63)),
        consent_language=draw(letters),
        vendor_list_version=draw(st.integers(0, 4095)),
        tcf_policy_version=draw(st.integers(0, 63)),
        is_service_specific=draw(st.booleans()),
        use_non_standard_texts=draw(st.booleans()),
        special_feature_opt_ins=draw(st.frozensets(st.integers(1, 12))),
        purposes_consent=draw(purpose_sets),
        purposes_li_transparency=draw(purpose_sets),
        purpose_one_treatment=draw(st.booleans()),
        publisher_cc=draw(letters),
        vendor_consents=draw(vendor_sections()),
        vendor_legitimate_interests=draw(vendor_sections()),
        restrictions=tuple(draw(st.lists(restrictions(), max_size=4))),
    )


def expected_ids(section: VendorSection) -> set[int]:
    if section.ranges is None:
        return set(section.ids)
    return {vendor for start, end in section.ranges for vendor in range(start, end + 1)}


def assert_decodes_to(tc: TCString, core: Core) -> None:
    assert (tc.created, tc.last_updated) == (core.created, core.last_updated)
    plain = (
        "cmp_id", "cmp_version", "consent_screen", "consent_language", "vendor_list_version",
        "tcf_policy_version", "is_service_specific", "use_non_standard_texts",
        "special_feature_opt_ins", "purposes_consent", "purposes_li_transparency",
        "purpose_one_treatment", "publisher_cc",
    )  # fmt: skip
    assert {name: getattr(tc, name) for name in plain} == {
        name: getattr(core, name) for name in plain
    }
    for decoded, encoded in (
        (tc.vendor_consents, core.vendor_consents),
        (tc.vendor_legitimate_interests, core.vendor_legitimate_interests),
    ):
        assert decoded.max_id == encoded.max_id
        assert set(decoded) == expected_ids(encoded)
    decoded_restrictions = [
        (r.purpose_id, r.restriction_type, set(r.vendors)) for r in tc.publisher_restrictions
    ]
    assert decoded_restrictions == [
        (r.purpose_id, r.restriction_type, expected_ids(VendorSection(ranges=r.ranges)))
        for r in core.restrictions
    ]


@settings(max_examples=200, deadline=None, database=None, derandomize=True)
@given(core=cores(), disclosed=st.none() | vendor_sections(), data=st.data())
def test_random_valid_strings_round_trip_and_their_truncations_fail(
    core: Core, disclosed: VendorSection | None, data: st.DataObject
) -> None:
    text = encode_tc_string(core, disclosed=disclosed)
    tc = decode_tc_string(text)

    assert_decodes_to(tc, core)
    if disclosed is None:
        assert tc.disclosed_vendors is None
    else:
        assert tc.disclosed_vendors is not None
        assert set(tc.disclosed_vendors) == expected_ids(disclosed)
    cut = data.draw(st.integers(0, len(text) - 1), label="cut")
    if text[:cut] != text.split(".")[0]:
        with pytest.raises(DecodeError):
            decode_tc_string(text[:cut])


def test_replacing_a_field_changes_only_that_field() -> None:
    base = decode_tc_string(encode_core(Core()))
    changed = decode_tc_string(encode_core(Core(cmp_version=99)))

    assert changed == replace(base, cmp_version=99)
