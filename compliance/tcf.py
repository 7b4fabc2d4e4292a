"""Decode IAB Europe TCF v2.x TC strings (v2.0 to v2.3 share one encoding) into frozen values.

The decoder is strict: a string that is truncated, has a version other than 2, a range that
runs backwards or past its MaxVendorId, an unknown segment type or data after its last field
raises `DecodeError` with the reason. What the values allow is decided elsewhere (the policy
and the GVL); this module only says what the string encodes.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from enum import IntEnum

from compliance.bits import BitReader, DecodeError

__all__ = [
    "DecodeError",
    "PublisherRestriction",
    "PublisherTC",
    "RestrictionType",
    "TCString",
    "VendorIds",
    "decode_tc_string",
]

TC_VERSION = 2
SEGMENT_DISCLOSED_VENDORS = 1
SEGMENT_ALLOWED_VENDORS = 2
SEGMENT_PUBLISHER_TC = 3


class RestrictionType(IntEnum):
    """Publisher restriction types as encoded (3 is undefined)."""

    NOT_ALLOWED = 0
    REQUIRE_CONSENT = 1
    REQUIRE_LEGITIMATE_INTEREST = 2


@dataclass(frozen=True, slots=True)
class VendorIds:
    """A set of vendor ids, kept as sorted merged ranges whatever encoding the string used."""

    max_id: int  # MaxVendorId as encoded; for a publisher restriction, its highest id
    ranges: tuple[tuple[int, int], ...] = ()

    @classmethod
    def from_ranges(cls, max_id: int, ranges: list[tuple[int, int]]) -> VendorIds:
        """Merge overlapping or adjacent (start, end) pairs into the canonical form."""
        merged: list[tuple[int, int]] = []
        for start, end in sorted(ranges):
            if merged and start <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return cls(max_id, tuple(merged))

    def __contains__(self, vendor_id: object) -> bool:
        if not isinstance(vendor_id, int):
            return False
        index = bisect.bisect_right(self.ranges, vendor_id, key=lambda span: span[0]) - 1
        return index >= 0 and self.ranges[index][0] <= vendor_id <= self.ranges[index][1]

    def __iter__(self) -> Iterator[int]:
        for start, end in self.ranges:
            yield from range(start, end + 1)

    def __len__(self) -> int:
        return sum(end - start + 1 for start, end in self.ranges)


@dataclass(frozen=True, slots=True)
class PublisherRestriction:
    """One PubRestrictionEntry: the publisher's restriction of `vendors` for `purpose_id`."""

    purpose_id: int
    restriction_type: RestrictionType
    vendors: VendorIds


@dataclass(frozen=True, slots=True)
class PublisherTC:
    """The publisher TC segment (type 3): the publisher's own purposes and custom purposes."""

    purposes_consent: frozenset[int]
    purposes_li_transparency: frozenset[int]
    num_custom_purposes: int
    custom_purposes_consent: frozenset[int]
    custom_purposes_li_transparency: frozenset[int]


@dataclass(frozen=True, slots=True)
class TCString:
    """A decoded TC string: the core segment plus whichever optional segments were present."""

    version: int
    created: datetime
    last_updated: datetime
    cmp_id: int
    cmp_version: int
    consent_screen: int
    consent_language: str
    vendor_list_version: int
    tcf_policy_version: int
    is_service_specific: bool
    use_non_standard_texts: bool
    special_feature_opt_ins: frozenset[int]
    purposes_consent: frozenset[int]
    purposes_li_transparency: frozenset[int]
    purpose_one_treatment: bool
    publisher_cc: str
    vendor_consents: VendorIds
    vendor_legitimate_interests: VendorIds
    publisher_restrictions: tuple[PublisherRestriction, ...] = ()
    disclosed_vendors: VendorIds | None = None
    allowed_vendors: VendorIds | None = None
    publisher_tc: PublisherTC | None = None

    def purpose_consent(self, purpose_id: int) -> bool:
        """The user consented to this purpose."""
        return purpose_id in self.purposes_consent

    def purpose_li(self, purpose_id: int) -> bool:
        """Legitimate interest was disclosed for this purpose and the user did not object."""
        return purpose_id in self.purposes_li_transparency

    def special_feature_opt_in(self, feature_id: int) -> bool:
        """The user opted in to this special feature."""
        return feature_id in self.special_feature_opt_ins

    def vendor_consent(self, vendor_id: int) -> bool:
        """The user consented to this vendor."""
        return vendor_id in self.vendor_consents

    def vendor_li(self, vendor_id: int) -> bool:
        """This vendor's legitimate interest was disclosed and the user did not object."""
        return vendor_id in self.vendor_legitimate_interests

    def vendor_disclosed(self, vendor_id: int) -> bool:
        """A CMP showed this vendor to the user (False when the segment is absent)."""
        return self.disclosed_vendors is not None and vendor_id in self.disclosed_vendors

    def restriction(self, purpose_id: int, vendor_id: int) -> RestrictionType | None:
        """The publisher's restriction type for this vendor and purpose, or None."""
        kinds = {
            entry.restriction_type
            for entry in self.publisher_restrictions
            if entry.purpose_id == purpose_id and vendor_id in entry.vendors
        }
        if len(kinds) == 1:
            return kinds.pop()
        # Published strings (Prebid's go-gdpr tests) list a vendor under two types for one
        # purpose. "Not allowed" wins, and "require consent" plus "require LI" leaves no legal
        # basis, so that means not allowed as well.
        return RestrictionType.NOT_ALLOWED if kinds else None


def decode_tc_string(text: str) -> TCString:
    """Decode a TC string, or raise DecodeError saying why it is not a valid one."""
    if not text:
        raise DecodeError("the TC string is empty")
    core_text, *segment_texts = text.split(".")
    core = _read_core(BitReader(core_text, what="core segment"))
    disclosed: VendorIds | None = None
    allowed: VendorIds | None = None
    publisher_tc: PublisherTC | None = None
    seen: set[int] = set()
    for number, segment_text in enumerate(segment_texts, start=2):
        what = f"segment {number}"
        reader = BitReader(segment_text, what=what)
        segment_type = reader.read_int(3, "SegmentType")
        if segment_type in seen:
            raise DecodeError(f"{what} repeats segment type {segment_type}")
        seen.add(segment_type)
        if segment_type == SEGMENT_DISCLOSED_VENDORS:
            disclosed = _read_vendor_section(reader, "DisclosedVendors")
        elif segment_type == SEGMENT_ALLOWED_VENDORS:
            allowed = _read_vendor_section(reader, "AllowedVendors")
        elif segment_type == SEGMENT_PUBLISHER_TC:
            publisher_tc = _read_publisher_tc(reader)
        else:
            raise DecodeError(f"{what} has unknown segment type {segment_type}")
        reader.expect_padding()
    return replace(
        core, disclosed_vendors=disclosed, allowed_vendors=allowed, publisher_tc=publisher_tc
    )


def _read_core(reader: BitReader) -> TCString:
    version = reader.read_int(6, "Version")
    if version != TC_VERSION:
        raise DecodeError(f"TC string version {version} is not supported; only 2 is")
    # Keyword arguments are evaluated in order, which is the order of the fields in the string.
    core = TCString(
        version=version,
        created=reader.read_datetime("Created"),
        last_updated=reader.read_datetime("LastUpdated"),
        cmp_id=reader.read_int(12, "CmpId"),
        cmp_version=reader.read_int(12, "CmpVersion"),
        consent_screen=reader.read_int(6, "ConsentScreen"),
        consent_language=reader.read_letters(2, "ConsentLanguage"),
        vendor_list_version=reader.read_int(12, "VendorListVersion"),
        tcf_policy_version=reader.read_int(6, "TcfPolicyVersion"),
        is_service_specific=reader.read_bool("IsServiceSpecific"),
        use_non_standard_texts=reader.read_bool("UseNonStandardTexts"),
        special_feature_opt_ins=reader.read_bitfield(12, "SpecialFeatureOptIns"),
        purposes_consent=reader.read_bitfield(24, "PurposesConsent"),
        purposes_li_transparency=reader.read_bitfield(24, "PurposesLITransparency"),
        purpose_one_treatment=reader.read_bool("PurposeOneTreatment"),
        publisher_cc=reader.read_letters(2, "PublisherCC"),
        vendor_consents=_read_vendor_section(reader, "VendorConsents"),
        vendor_legitimate_interests=_read_vendor_section(reader, "VendorLegitimateInterests"),
        publisher_restrictions=_read_publisher_restrictions(reader),
    )
    reader.expect_padding()
    return core


def _read_vendor_section(reader: BitReader, name: str) -> VendorIds:
    """MaxVendorId, IsRangeEncoding, then a bitfield or range entries."""
    max_id = reader.read_int(16, f"{name}.MaxVendorId")
    if reader.read_bool(f"{name}.IsRangeEncoding"):
        ranges = _read_range_entries(reader, name, max_id=max_id)
        return VendorIds.from_ranges(max_id, ranges)
    return VendorIds(max_id, reader.read_bitfield_runs(max_id, f"{name}.BitField"))


def _read_range_entries(
    reader: BitReader, name: str, *, max_id: int | None
) -> list[tuple[int, int]]:
    """NumEntries, then per entry IsARange, StartOrOnlyVendorId and maybe EndVendorId."""
    ranges = []
    for entry in range(reader.read_int(12, f"{name}.NumEntries")):
        where = f"{name} range entry {entry + 1}"
        is_range = reader.read_bool(f"{where}.IsARange")
        start = reader.read_int(16, f"{where}.StartOrOnlyVendorId")
        end = reader.read_int(16, f"{where}.EndVendorId") if is_range else start
        if start < 1:
            raise reader.fail(f"{where}: vendor id 0 does not exist")
        if start > end:
            raise reader.fail(f"{where}: starts at {start} after its end {end}")
        if max_id is not None and end > max_id:
            raise reader.fail(f"{where}: vendor {end} is above MaxVendorId {max_id}")
        ranges.append((start, end))
    return ranges


def _read_publisher_restrictions(reader: BitReader) -> tuple[PublisherRestriction, ...]:
    """NumPubRestrictions (always present), then purpose, type and vendor ranges per entry."""
    entries = []
    for number in range(1, reader.read_int(12, "NumPubRestrictions") + 1):
        where = f"PubRestrictionEntry {number}"
        purpose_id = reader.read_int(6, f"{where}.PurposeId")
        restriction_type = reader.read_int(2, f"{where}.RestrictionType")
        if purpose_id == 0:
            raise reader.fail(f"{where}: purpose id 0 does not exist")
        if restriction_type == 3:
            raise reader.fail(f"{where}: restriction type 3 is undefined")
        ranges = _read_range_entries(reader, where, max_id=None)
        top = max((end for _, end in ranges), default=0)
        vendors = VendorIds.from_ranges(top, ranges)
        entries.append(PublisherRestriction(purpose_id, RestrictionType(restriction_type), vendors))
    return tuple(entries)


def _read_publisher_tc(reader: BitReader) -> PublisherTC:
    consent = reader.read_bitfield(24, "PubPurposesConsent")
    li = reader.read_bitfield(24, "PubPurposesLITransparency")
    count = reader.read_int(6, "NumCustomPurposes")
    return PublisherTC(
        purposes_consent=consent,
        purposes_li_transparency=li,
        num_custom_purposes=count,
        custom_purposes_consent=reader.read_bitfield(count, "CustomPurposesConsent"),
        custom_purposes_li_transparency=reader.read_bitfield(count, "CustomPurposesLITransparency"),
    )
