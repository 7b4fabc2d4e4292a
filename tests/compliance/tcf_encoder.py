"""A small TC string encoder for tests: builds strings from explicit field values.

It writes exactly what it is given, valid or not (a range may run backwards, a version may be
1), so tests can build both round-trip cases and precise negatives. It emits the fewest
characters that hold the bits, so every proper prefix of a segment is a truncated segment.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from compliance.bits import ALPHABET

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DECISECOND = timedelta(milliseconds=100)


class BitWriter:
    """Appends big-endian fields and renders them six bits per base64url character."""

    def __init__(self) -> None:
        self.bits: list[str] = []

    def uint(self, value: int, width: int) -> BitWriter:
        assert 0 <= value < (1 << width) or (width == 0 and value == 0), (value, width)
        if width:
            self.bits.append(format(value, f"0{width}b"))
        return self

    def flag(self, value: bool) -> BitWriter:
        return self.uint(int(value), 1)

    def letters(self, text: str) -> BitWriter:
        for char in text:
            self.uint(ord(char) - ord("A"), 6)
        return self

    def timestamp(self, value: datetime) -> BitWriter:
        return self.uint((value - EPOCH) // DECISECOND, 36)

    def bitfield(self, ids: Iterable[int], width: int) -> BitWriter:
        chosen = set(ids)
        self.bits.append("".join("1" if i in chosen else "0" for i in range(1, width + 1)))
        return self

    def fibonacci(self, value: int) -> BitWriter:
        assert value >= 1
        fibs = [1, 2]
        while fibs[-1] <= value:
            fibs.append(fibs[-1] + fibs[-2])
        code = ["0"] * len(fibs)
        for index in range(len(fibs) - 1, -1, -1):
            if fibs[index] <= value:
                code[index] = "1"
                value -= fibs[index]
        self.bits.append("".join(code).rstrip("0") + "1")
        return self

    def encode(self) -> str:
        bits = "".join(self.bits)
        bits += "0" * (-len(bits) % 6)
        return "".join(ALPHABET[int(bits[i : i + 6], 2)] for i in range(0, len(bits), 6))


@dataclass(frozen=True)
class VendorSection:
    """MaxVendorId plus either a bitfield of `ids` or, when `ranges` is set, range entries."""

    max_id: int = 0
    ids: frozenset[int] = frozenset()
    ranges: tuple[tuple[int, int], ...] | None = None


@dataclass(frozen=True)
class Restriction:
    purpose_id: int
    restriction_type: int
    ranges: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Core:
    version: int = 2
    created: datetime = datetime(2025, 6, 3, tzinfo=UTC)
    last_updated: datetime = datetime(2025, 6, 3, tzinfo=UTC)
    cmp_id: int = 300
    cmp_version: int = 2
    consent_screen: int = 1
    consent_language: str = "EN"
    vendor_list_version: int = 150
    tcf_policy_version: int = 5
    is_service_specific: bool = True
    use_non_standard_texts: bool = False
    special_feature_opt_ins: frozenset[int] = frozenset()
    purposes_consent: frozenset[int] = frozenset()
    purposes_li_transparency: frozenset[int] = frozenset()
    purpose_one_treatment: bool = False
    publisher_cc: str = "DE"
    vendor_consents: VendorSection = field(default_factory=VendorSection)
    vendor_legitimate_interests: VendorSection = field(default_factory=VendorSection)
    restrictions: tuple[Restriction, ...] = ()


@dataclass(frozen=True)
class PublisherTC:
    purposes_consent: frozenset[int] = frozenset()
    purposes_li_transparency: frozenset[int] = frozenset()
    num_custom_purposes: int = 0
    custom_purposes_consent: frozenset[int] = frozenset()
    custom_purposes_li_transparency: frozenset[int] = frozenset()


def write_ranges(writer: BitWriter, ranges: tuple[tuple[int, int], ...]) -> None:
    writer.uint(len(ranges), 12)
    for start, end in ranges:
        writer.flag(start != end)
        writer.uint(start, 16)
        if start != end:
            writer.uint(end, 16)


def write_vendor_section(writer: BitWriter, section: VendorSection) -> None:
    writer.uint(section.max_id, 16)
    writer.flag(section.ranges is not None)
    if section.ranges is None:
        writer.bitfield(section.ids, section.max_id)
    else:
        write_ranges(writer, section.ranges)


def encode_core(core: Core) -> str:
    writer = BitWriter()
    writer.uint(core.version, 6).timestamp(core.created).timestamp(core.last_updated)
    writer.uint(core.cmp_id, 12).uint(core.cmp_version, 12).uint(core.consent_screen, 6)
    writer.letters(core.consent_language).uint(core.vendor_list_version, 12)
    writer.uint(core.tcf_policy_version, 6).flag(core.is_service_specific)
    writer.flag(core.use_non_standard_texts).bitfield(core.special_feature_opt_ins, 12)
    writer.bitfield(core.purposes_consent, 24).bitfield(core.purposes_li_transparency, 24)
    writer.flag(core.purpose_one_treatment).letters(core.publisher_cc)
    write_vendor_section(writer, core.vendor_consents)
    write_vendor_section(writer, core.vendor_legitimate_interests)
    writer.uint(len(core.restrictions), 12)
    for restriction in core.restrictions:
        writer.uint(restriction.purpose_id, 6).uint(restriction.restriction_type, 2)
        write_ranges(writer, restriction.ranges)
    return writer.encode()


def encode_vendor_segment(segment_type: int, section: VendorSection) -> str:
    writer = BitWriter().uint(segment_type, 3)
    write_vendor_section(writer, section)
    return writer.encode()


def encode_publisher_tc(publisher_tc: PublisherTC, *, segment_type: int = 3) -> str:
    writer = BitWriter().uint(segment_type, 3)
    writer.bitfield(publisher_tc.purposes_consent, 24)
    writer.bitfield(publisher_tc.purposes_li_transparency, 24)
    count = publisher_tc.num_custom_purposes
    writer.uint(count, 6).bitfield(publisher_tc.custom_purposes_consent, count)
    writer.bitfield(publisher_tc.custom_purposes_li_transparency, count)
    return writer.encode()


def encode_tc_string(
    core: Core,
    *,
    disclosed: VendorSection | None = None,
    allowed: VendorSection | None = None,
    publisher_tc: PublisherTC | None = None,
) -> str:
    segments = [encode_core(core)]
    if disclosed is not None:
        segments.append(encode_vendor_segment(1, disclosed))
    if allowed is not None:
        segments.append(encode_vendor_segment(2, allowed))
    if publisher_tc is not None:
        segments.append(encode_publisher_tc(publisher_tc))
    return ".".join(segments)
