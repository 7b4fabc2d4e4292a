"""Decode IAB Global Privacy Platform (GPP) strings: the header and the sections we act on.

A GPP string is `header~section~section...`. The header lists the section ids in the order
the sections follow. We decode tcfeuv2 (2) with the TC string decoder, uspv1 (6) with the US
Privacy parser, usnat (7) and usca (8) here and the state sections 9 to 22 in
`compliance.gpp_states`; other sections are kept as their raw text. A US section in a version
we do not know becomes an `UnsupportedSection`; the rest of the string still applies.
Only the sections a request's `gpp_sid` lists apply to it (`GppString.applicable_sections`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from types import MappingProxyType

from compliance.bits import BitReader, DecodeError
from compliance.gpp_states import (
    STATE_SECTIONS,
    UnsupportedSection,
    UnsupportedVersion,
    UsStateSection,
    decode_state_section,
)
from compliance.tcf import TCString, decode_tc_string
from compliance.usprivacy import UsPrivacy, parse_us_privacy

__all__ = [
    "DecodeError",
    "GppString",
    "OptOut",
    "Section",
    "UsCalifornia",
    "UsNational",
    "decode_gpp",
    "decode_usca",
    "decode_usnat",
]

HEADER_TYPE = 3
GPP_VERSION = 1
SECTION_TCFEUV2 = 2
SECTION_USPV1 = 6
SECTION_USNAT = 7
SECTION_USCA = 8
GPC_SUBSECTION = 1
# usnat v2 (2024) added four sensitive-data categories and a third child-consent field.
_USNAT_LAYOUTS = {1: (12, 2), 2: (16, 3)}
_USCA_LAYOUTS = {1: (9, 2)}


class OptOut(IntEnum):
    """The value of a usnat/usca opt-out field."""

    NOT_APPLICABLE = 0
    OPTED_OUT = 1
    DID_NOT_OPT_OUT = 2


@dataclass(frozen=True, slots=True)
class UsNational:
    """The usnat section (MSPA US National); 2-bit fields hold 0 n/a, 1 yes/opted out, 2 no."""

    version: int
    sharing_notice: int
    sale_opt_out_notice: int
    sharing_opt_out_notice: int
    targeted_advertising_opt_out_notice: int
    sensitive_data_processing_opt_out_notice: int
    sensitive_data_limit_use_notice: int
    sale_opt_out: int
    sharing_opt_out: int
    targeted_advertising_opt_out: int
    sensitive_data_processing: tuple[int, ...]
    known_child_sensitive_data_consents: tuple[int, ...]
    personal_data_consents: int
    mspa_covered_transaction: int
    mspa_opt_out_option_mode: int
    mspa_service_provider_mode: int
    gpc: bool | None = None  # None: the string has no GPC subsection

    def opted_out_of_sale_or_sharing(self) -> bool:
        """The user opted out of the sale or the sharing of their personal data."""
        return OptOut.OPTED_OUT in (self.sale_opt_out, self.sharing_opt_out)

    def opted_out_of_targeted_ads(self) -> bool:
        """The user opted out of targeted advertising."""
        # California calls targeted advertising "sharing" (cross-context behavioural ads), so
        # a sharing opt-out counts here too.
        return OptOut.OPTED_OUT in (self.targeted_advertising_opt_out, self.sharing_opt_out)


@dataclass(frozen=True, slots=True)
class UsCalifornia:
    """The usca section (California); 2-bit fields hold 0 n/a, 1 yes/opted out, 2 no."""

    version: int
    sale_opt_out_notice: int
    sharing_opt_out_notice: int
    sensitive_data_limit_use_notice: int
    sale_opt_out: int
    sharing_opt_out: int
    sensitive_data_processing: tuple[int, ...]
    known_child_sensitive_data_consents: tuple[int, ...]
    personal_data_consents: int
    mspa_covered_transaction: int
    mspa_opt_out_option_mode: int
    mspa_service_provider_mode: int
    gpc: bool | None = None  # None: the string has no GPC subsection

    def opted_out_of_sale_or_sharing(self) -> bool:
        """The user opted out of the sale or the sharing of their personal information."""
        return OptOut.OPTED_OUT in (self.sale_opt_out, self.sharing_opt_out)

    def opted_out_of_targeted_ads(self) -> bool:
        """The user opted out of cross-context behavioural advertising."""
        # The CCPA has no targeted-advertising field: "sharing" is exactly that, and a sale
        # opt-out also stops us passing their data on to the buyers who would target them.
        return self.opted_out_of_sale_or_sharing()


Section = (
    TCString | UsPrivacy | UsNational | UsCalifornia | UsStateSection | UnsupportedSection | str
)


@dataclass(frozen=True, slots=True)
class GppString:
    """A decoded GPP string: its section ids in order and each section, decoded or raw."""

    version: int
    section_ids: tuple[int, ...]
    sections: Mapping[int, Section]

    def applicable_sections(self, gpp_sid: Iterable[int]) -> GppString:
        """The sections this request's gpp_sid lists; the others do not apply to it."""
        wanted = frozenset(gpp_sid)
        ids = tuple(section_id for section_id in self.section_ids if section_id in wanted)
        kept = MappingProxyType({section_id: self.sections[section_id] for section_id in ids})
        return GppString(self.version, ids, kept)

    @property
    def tcf_eu_v2(self) -> TCString | None:
        """The tcfeuv2 section (2), if present."""
        section = self.sections.get(SECTION_TCFEUV2)
        return section if isinstance(section, TCString) else None

    @property
    def us_privacy(self) -> UsPrivacy | None:
        """The uspv1 section (6), if present."""
        section = self.sections.get(SECTION_USPV1)
        return section if isinstance(section, UsPrivacy) else None

    @property
    def us_national(self) -> UsNational | None:
        """The usnat section (7), if present."""
        section = self.sections.get(SECTION_USNAT)
        return section if isinstance(section, UsNational) else None

    @property
    def us_california(self) -> UsCalifornia | None:
        """The usca section (8), if present."""
        section = self.sections.get(SECTION_USCA)
        return section if isinstance(section, UsCalifornia) else None


def decode_gpp(text: str) -> GppString:
    """Decode a GPP string, or raise DecodeError saying why it is not a valid one."""
    if not text:
        raise DecodeError("the GPP string is empty")
    header_text, *section_texts = text.split("~")
    reader = BitReader(header_text, what="GPP header")
    header_type = reader.read_int(6, "Type")
    if header_type != HEADER_TYPE:
        raise DecodeError(f"GPP header type is {header_type}, not {HEADER_TYPE}")
    version = reader.read_int(6, "Version")
    if version != GPP_VERSION:
        raise DecodeError(f"GPP version {version} is not supported; only {GPP_VERSION} is")
    section_ids = _read_section_ids(reader, limit=len(section_texts))
    reader.expect_padding()
    if len(section_ids) != len(section_texts):
        raise DecodeError(
            f"the GPP header lists {len(section_ids)} sections, the string has {len(section_texts)}"
        )
    sections = {
        section_id: _decode_section(section_id, section_text)
        for section_id, section_text in zip(section_ids, section_texts, strict=True)
    }
    return GppString(version, section_ids, MappingProxyType(sections))


def _read_section_ids(reader: BitReader, *, limit: int) -> tuple[int, ...]:
    """A Fibonacci range: a 12-bit count, then per item a group flag and Fibonacci offsets."""
    ids: list[int] = []
    last = 0
    for item in range(1, reader.read_int(12, "NumSections") + 1):
        is_group = reader.read_bool(f"section item {item} IsGroup")
        start = last + reader.read_fibonacci(f"section item {item} offset")
        end = start + reader.read_fibonacci(f"section item {item} length") if is_group else start
        # Refuse before expanding: a forged group could otherwise claim millions of ids.
        if len(ids) + end - start + 1 > limit:
            raise DecodeError(f"the GPP header lists more than the {limit} sections present")
        ids.extend(range(start, end + 1))
        last = end
    return tuple(ids)


def _decode_section(section_id: int, text: str) -> Section:
    try:
        if section_id in STATE_SECTIONS:
            return decode_state_section(section_id, text)
        if section_id == SECTION_TCFEUV2:
            return decode_tc_string(text)
        if section_id == SECTION_USPV1:
            return parse_us_privacy(text)
        if section_id == SECTION_USNAT:
            return decode_usnat(text)
        if section_id == SECTION_USCA:
            return decode_usca(text)
    except UnsupportedVersion as error:
        # A US section in a version we do not know is refused on its own; the rest stands.
        version = _version_of(text)
        if version is None:
            raise DecodeError(f"GPP section {section_id}: {error}") from error
        return UnsupportedSection(section_id, version)
    except DecodeError as error:
        raise DecodeError(f"GPP section {section_id}: {error}") from error
    return text


def _version_of(text: str) -> int | None:
    try:
        return BitReader(text.split(".")[0], what="section").read_int(6, "Version")
    except DecodeError:
        return None


def decode_usnat(text: str) -> UsNational:
    """Decode a usnat section (versions 1 and 2) with its optional GPC subsection."""
    core_text, *subsections = text.split(".")
    reader = BitReader(core_text, what="usnat core")
    version = reader.read_int(6, "Version")
    if version not in _USNAT_LAYOUTS:
        raise UnsupportedVersion(f"usnat version {version} is not supported; only 1 and 2 are")
    sensitive, children = _USNAT_LAYOUTS[version]
    section = UsNational(
        version=version,
        sharing_notice=_read_choice(reader, "SharingNotice"),
        sale_opt_out_notice=_read_choice(reader, "SaleOptOutNotice"),
        sharing_opt_out_notice=_read_choice(reader, "SharingOptOutNotice"),
        targeted_advertising_opt_out_notice=_read_choice(reader, "TargetedAdvertisingOptOutNotice"),
        sensitive_data_processing_opt_out_notice=_read_choice(
            reader, "SensitiveDataProcessingOptOutNotice"
        ),
        sensitive_data_limit_use_notice=_read_choice(reader, "SensitiveDataLimitUseNotice"),
        sale_opt_out=_read_choice(reader, "SaleOptOut"),
        sharing_opt_out=_read_choice(reader, "SharingOptOut"),
        targeted_advertising_opt_out=_read_choice(reader, "TargetedAdvertisingOptOut"),
        sensitive_data_processing=_read_choices(reader, sensitive, "SensitiveDataProcessing"),
        known_child_sensitive_data_consents=_read_choices(
            reader, children, "KnownChildSensitiveDataConsents"
        ),
        personal_data_consents=_read_choice(reader, "PersonalDataConsents"),
        mspa_covered_transaction=_read_choice(reader, "MspaCoveredTransaction"),
        mspa_opt_out_option_mode=_read_choice(reader, "MspaOptOutOptionMode"),
        mspa_service_provider_mode=_read_choice(reader, "MspaServiceProviderMode"),
        gpc=_read_gpc_subsection(subsections, "usnat"),
    )
    reader.expect_padding()
    return section


def decode_usca(text: str) -> UsCalifornia:
    """Decode a usca section (version 1) with its optional GPC subsection."""
    core_text, *subsections = text.split(".")
    reader = BitReader(core_text, what="usca core")
    version = reader.read_int(6, "Version")
    if version not in _USCA_LAYOUTS:
        raise UnsupportedVersion(f"usca version {version} is not supported; only 1 is")
    sensitive, children = _USCA_LAYOUTS[version]
    section = UsCalifornia(
        version=version,
        sale_opt_out_notice=_read_choice(reader, "SaleOptOutNotice"),
        sharing_opt_out_notice=_read_choice(reader, "SharingOptOutNotice"),
        sensitive_data_limit_use_notice=_read_choice(reader, "SensitiveDataLimitUseNotice"),
        sale_opt_out=_read_choice(reader, "SaleOptOut"),
        sharing_opt_out=_read_choice(reader, "SharingOptOut"),
        sensitive_data_processing=_read_choices(reader, sensitive, "SensitiveDataProcessing"),
        known_child_sensitive_data_consents=_read_choices(
            reader, children, "KnownChildSensitiveDataConsents"
        ),
        personal_data_consents=_read_choice(reader, "PersonalDataConsents"),
        mspa_covered_transaction=_read_choice(reader, "MspaCoveredTransaction"),
        mspa_opt_out_option_mode=_read_choice(reader, "MspaOptOutOptionMode"),
        mspa_service_provider_mode=_read_choice(reader, "MspaServiceProviderMode"),
        gpc=_read_gpc_subsection(subsections, "usca"),
    )
    reader.expect_padding()
    return section


def _read_choice(reader: BitReader, field: str) -> int:
    """A 2-bit field; every one of them defines only 0, 1 and 2."""
    value = reader.read_int(2, field)
    if value == 3:
        raise reader.fail(f"{field} is 3, which is undefined")
    return value


def _read_choices(reader: BitReader, count: int, field: str) -> tuple[int, ...]:
    return tuple(_read_choice(reader, f"{field}[{index}]") for index in range(1, count + 1))


def _read_gpc_subsection(subsections: list[str], section: str) -> bool | None:
    """The Gpc bit of the optional GPC subsection, or None when there is none."""
    if not subsections:
        return None
    if len(subsections) > 1:
        raise DecodeError(f"{section} has {len(subsections)} subsections; only GPC is defined")
    reader = BitReader(subsections[0], what=f"{section} GPC subsection")
    subsection_type = reader.read_int(2, "SubsectionType")
    if subsection_type != GPC_SUBSECTION:
        raise reader.fail(f"subsection type {subsection_type} is not GPC (1)")
    gpc = reader.read_bool("Gpc")
    reader.expect_padding()
    return gpc
