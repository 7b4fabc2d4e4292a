"""Published TC strings with the values their publishers assert, and the spec's examples.

Sources: prebid/go-gdpr `vendorconsent/tcf2/*_test.go` and `vendorconsent/consent20_test.go`
(Prebid Server's decoder; each string below is asserted there with the values checked here),
and the examples in IAB Europe's "Consent string and vendor list formats v2" specification.
"""

from datetime import UTC, datetime

import pytest

from compliance.tcf import DecodeError, RestrictionType, TCString, decode_tc_string

# go-gdpr metadata_test.go
CREATED_2020_02_27 = (
    "COvcSpYOvcSpYC9AAAENAPCAAAAAAAAAAAAACvwDQABAAIAAYABIAC4AJQAagA9ACEAPgAjIBJoCvAK-AAAAAA"
)
LARGE_CMP_ID = (
    "COyiBqdOyiBqdObAAAENAfCIAP8AAH-AAAAAB4AXQQgEAAAgoAAAAABAIYQUAAAAAAAAAAAAAAAIQIQCxIvkgQ"
    "MAAAABgAIAAAAAAAAAAABAZAkAAA"
)
TCF2_FIELDS = "COx3XOeOx3XOeLkAAAENAfCIAAAAAHgAAIAAAAAAAAAA"
# go-gdpr bitfield_test.go, rangesection_test.go, pubrestrict_test.go
BITFIELD = "COwGVJOOwGVJOADACHENAOCAAO6as_-AAAhoAFNLAAoAAAA"
RANGES = "COyiILmOyiILmADACHENAPCAAAAAAAAAAAAAE5QBgALgAqgD8AQACSwEygJyAAAAAA"
RESTRICTIONS = "COwAdDhOwAdDhN4ABAENAPCgAAQAAv___wAAAFP_AAp_4AI6ACACAA"
RESTRICTIONS_2 = (
    "COxPe2TOxPe2TALABAENAPCgAAAAAAAAAAAAAFAAAAoAAA4IACACAIABgACAFA4ADACAAIygAGADwAQBIAIAIB0AE"
    "AEBSACACAA"
)
# go-gdpr consent_test.go: a TCF 2.3 string whose disclosed vendors are 1-5, 100 and 404.
DISCLOSED = "CQSbk4AQSbk4ANwAAAENAwCgAAAAAAAAAAYgACPAAAAA.IDKQA4AAgAKAGQAygAAA.YAAAAAAAAAAA"
# The specification's globally scoped string with all four segments.
SPEC_FOUR_SEGMENTS = (
    "COw4XqLOw4XqLAAAAAENAXCAAAAAAAAAAAAAAAAAAAAA"
    ".IFukWSQgAIQwgI0QEByFAAAAeIAACAIgSAAQAIAgEQACEABAAAgAQFAEAIAAAGBAAgAAAAQAIFAAMCQAAgAAQiRAEQ"
    "AAAAANAAIAAggAIYQFAAARmggBC3ZCYzU2yIA"
    ".QFukWSQgAIQwgI0QEByFAAAAeIAACAIgSAAQAIAgEQACEABAAAgAQFAEAIAAAGBAAgAAAAQAIFAAMCQAAgAAQiRAEQ"
    "AAAAANAAIAAggAIYQFAAARmggBC3ZCYzU2yIA"
    ".YAAAAAAAAAAAAAAAAAA"
)
SPEC_SERVICE_SPECIFIC = (
    "CLcVDxRMWfGmWAVAHCENAXCkAKDAADnAABRgA5mdfCKZuYJez-NQm0TBMYA4oCAAGQYIAAAAAAEAIAEgAA"
    ".argAC0gAAAAAAAAAAAA"
)
SPEC_OOB_CORE = "COvFyGBOvFyGBAbAAAENAPCAAOAAAAAAAAAAAEEUACCKAAA"
SPEC_OOB_DISCLOSED = (
    "IFoEUQQgAIQwgIwQABAEAAAAOIAACAIAAAAQAIAgEAACEAAAAAgAQBAAAAAAAGBAAgAAAAAAAFAAECAAAgAAQARAEQ"
    "AAAAAJAAIAAgAAAYQEAAAQmAgBC3ZAYzUw"
)

PUBLISHED = [
    CREATED_2020_02_27,
    LARGE_CMP_ID,
    TCF2_FIELDS,
    BITFIELD,
    RANGES,
    RESTRICTIONS,
    RESTRICTIONS_2,
    DISCLOSED,
    SPEC_FOUR_SEGMENTS,
    SPEC_SERVICE_SPECIFIC,
    f"{SPEC_OOB_CORE}.{SPEC_OOB_DISCLOSED}",
]


def test_created_and_last_updated() -> None:
    tc = decode_tc_string(CREATED_2020_02_27)

    assert tc.version == 2
    assert tc.created.replace(microsecond=0) == datetime(2020, 2, 27, 19, 51, 49, tzinfo=UTC)
    assert tc.last_updated == tc.created


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        (LARGE_CMP_ID, "cmp_id", 923),
        ("COyiCPlOyiCPlKxMIAENAfCAAAAAAAAAAAAAAAAAAAAA", "cmp_version", 776),
        ("COyiFYuOyiFYuDKAA4ENAfCAAAAAAAAAAAAAAAAAAAAA", "consent_screen", 56),
        ("COyiHgFOyiHgFN4ABABGAPCAAAAAAAAAAAAAAFAAAAoAAAA", "consent_language", "BG"),
        ("COyiHgFOyiHgFN4ABASVAPCAAAAAAAAAAAAAAFAAAAoAAAA", "consent_language", "SV"),
        ("COwJz-rOwJz-rMLAEAFRAPCgAAAAAAAAAAqIAAAAAAAA", "vendor_list_version", 15),
    ],
)
def test_metadata_fields(text: str, field: str, value: object) -> None:
    assert getattr(decode_tc_string(text), field) == value


def test_a_max_vendor_id_of_zero_is_valid() -> None:
    tc = decode_tc_string("COwJz-rOwJz-rMLAEAFRAPCgAAAAAAAAAAqIAAAAAAAA")

    assert tc.vendor_consents.max_id == 0
    assert not tc.vendor_consent(1)


def test_purpose_one_treatment_special_features_and_li_transparency() -> None:
    tc = decode_tc_string(TCF2_FIELDS)

    assert tc.purpose_one_treatment is True
    assert (tc.special_feature_opt_in(1), tc.special_feature_opt_in(2)) == (True, False)
    assert [tc.purpose_li(n) for n in range(1, 8)] == [False, True, True, True, True, False, False]


def test_bitfield_vendor_consents() -> None:
    tc = decode_tc_string(BITFIELD)

    assert (tc.cmp_id, tc.cmp_version, tc.consent_screen) == (3, 2, 7)
    assert (tc.consent_language, tc.vendor_list_version) == ("EN", 14)
    assert tc.purposes_consent == {1, 2, 3, 5, 6, 7, 9, 12, 13, 15, 17, 19, 20, 23, 24}
    assert tc.vendor_consents.max_id == 10
    assert set(tc.vendor_consents) == {1, 2, 4, 7, 9, 10}
    assert [tc.purpose_consent(n) for n in (1, 4, 24)] == [True, False, True]


def test_range_encoded_vendor_consents() -> None:
    tc = decode_tc_string(RANGES)

    assert (tc.cmp_id, tc.cmp_version, tc.consent_screen, tc.vendor_list_version) == (3, 2, 7, 15)
    assert tc.vendor_consents.max_id == 626
    assert set(tc.vendor_consents) == {23, 42, 126, 127, 128, 587, 613, 626}
    assert tc.vendor_consent(127) and not tc.vendor_consent(129)


def test_publisher_restrictions() -> None:
    tc = decode_tc_string(RESTRICTIONS)

    assert (tc.version, tc.cmp_id, tc.cmp_version, tc.consent_screen) == (2, 888, 1, 0)
    assert (tc.consent_language, tc.vendor_list_version, tc.vendor_consents.max_id) == (
        "EN",
        15,
        10,
    )
    assert tc.restriction(7, 32) == RestrictionType.REQUIRE_CONSENT
    assert tc.restriction(7, 7) is None
    assert tc.restriction(5, 32) is None


def test_publisher_restrictions_with_ranges_and_overlapping_types() -> None:
    tc = decode_tc_string(RESTRICTIONS_2)

    assert tc.purpose_one_treatment is False
    assert not tc.special_feature_opt_in(3)
    assert tc.restriction(1, 32) == RestrictionType.NOT_ALLOWED
    assert [tc.restriction(2, vendor) for vendor in (5, 11, 44, 500)] == [0, 0, None, None]
    # go-gdpr reports vendor 32 under both type 0 and type 1 for purpose 2; "not allowed" wins.
    types_for_32 = {
        (r.purpose_id, r.restriction_type) for r in tc.publisher_restrictions if 32 in r.vendors
    }
    assert {(2, RestrictionType.NOT_ALLOWED), (2, RestrictionType.REQUIRE_CONSENT)} <= types_for_32
    assert tc.restriction(2, 32) == RestrictionType.NOT_ALLOWED
    assert tc.restriction(2, 42) is None


def test_disclosed_vendors_segment() -> None:
    tc = decode_tc_string(DISCLOSED)

    assert tc.disclosed_vendors is not None
    assert tc.disclosed_vendors.max_id == 404
    assert set(tc.disclosed_vendors) == {1, 2, 3, 4, 5, 100, 404}
    assert [tc.vendor_disclosed(v) for v in (0, 5, 6, 100, 101, 404, 405)] == [
        False, True, False, True, False, True, False,
    ]  # fmt: skip
    assert tc.publisher_tc is not None


def test_a_string_without_disclosed_vendors_discloses_nobody() -> None:
    tc = decode_tc_string(RANGES)

    assert tc.disclosed_vendors is None
    assert not tc.vendor_disclosed(1)


def test_the_specifications_four_segment_example() -> None:
    tc = decode_tc_string(SPEC_FOUR_SEGMENTS)

    assert tc.disclosed_vendors is not None and tc.allowed_vendors is not None
    assert tc.publisher_tc is not None
    assert tc.publisher_tc.purposes_consent == frozenset()


def test_the_specifications_service_specific_example_has_a_publisher_tc() -> None:
    tc = decode_tc_string(SPEC_SERVICE_SPECIFIC)

    assert tc.disclosed_vendors is None
    assert tc.publisher_tc is not None


def test_the_specifications_oob_example_drops_to_its_core() -> None:
    with_segment = decode_tc_string(f"{SPEC_OOB_CORE}.{SPEC_OOB_DISCLOSED}")
    core_only = decode_tc_string(SPEC_OOB_CORE)

    assert with_segment.disclosed_vendors is not None
    assert core_only.disclosed_vendors is None
    assert core_only.vendor_consents == with_segment.vendor_consents


@pytest.mark.parametrize("text", PUBLISHED)
def test_every_truncation_of_a_published_string_is_rejected(text: str) -> None:
    segments = text.split(".")
    for index, segment in enumerate(segments):
        # Trailing "A"s may be padding; anything shorter than the rest is cut into the data.
        for cut in range(len(segment.rstrip("A"))):
            truncated = ".".join([*segments[:index], segment[:cut], *segments[index + 1 :]])
            with pytest.raises(DecodeError):
                decode_tc_string(truncated)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        # go-gdpr consent20_test.go: each is invalid there too, for the same reason.
        ("CONciguONcjGKADACHENAOCIAC0ta__AACiQAA", "VendorConsents.MaxVendorId needs 16"),
        ("BONciguONcjGKADACHENAOCIAC0ta__AACiQABgAAYA", "version 1 is not supported"),
        ("CONciguONcjGKADACHENAOCIAC0ta__AACiQAeAA", "BitField needs 60 more bits"),
        ("CONciguONcjGKADACHENAOCIAC0ta__AACiQABwAQQ", "entry 1.StartOrOnlyVendorId needs"),
        ("CONciguONcjGKADACHENAOCIAC0ta__AACiQABwAYQAC", "entry 1.EndVendorId needs"),
        ("CONciguONcjGKADACHENAOCIAC0ta__AACiQABwAgABA", "entry 2.StartOrOnlyVendorId needs"),
        ("CONciguONcjGKADACHENAOCIAC0ta__AACiQABwAgAAAAA", "entry 1: vendor id 0 does not exist"),
        ("CONciguONcjGKADACHENAOCIAC0ta__AACiQABwAgACAAA", "vendor 4 is above MaxVendorId 3"),
        ("CONciguONcjGKADACHENAOCIAC0ta__AACiQABwAgABAAAA", "entry 2: vendor id 0 does not"),
        ("CONciguONcjGKADACHENAOCIAC0ta__AACiQABwAgABAAEA", "vendor 4 is above MaxVendorId 3"),
        ("CONciguONcjGKADACHENAOCIAC0ta__AACiQABwAoABAACA", "starts at 2 after its end 1"),
        # go-gdpr's hand-made "valid" baseline stops before NumPubRestrictions, which the
        # specification requires even when it is 0; we refuse it rather than guess.
        ("CONciguONcjGKADACHENAOCIAC0ta__AACiQABgAAYA", "NumPubRestrictions needs 12"),
        # The specification's OOB example 3 repeats the DisclosedVendors type (its third
        # segment starts with "P" = 001111), so it is not a well-formed string.
        (f"{SPEC_OOB_CORE}.{SPEC_OOB_DISCLOSED}.PVAfDObdrA", "segment 3 repeats segment type 1"),
    ],
)
def test_published_invalid_strings_are_rejected_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode_tc_string(text)


def test_decoded_strings_are_frozen() -> None:
    tc = decode_tc_string(BITFIELD)

    assert isinstance(tc, TCString)
    with pytest.raises(AttributeError):
        tc.cmp_id = 1  # type: ignore[misc]
