"""GPP US state sections 9 to 22 (Virginia to Tennessee), decoded from one table of layouts,
and the one opt-out rule every US section (usnat, usca and these) is judged by.

Each state section is a core segment of 2-bit fields after a 6-bit Version (0 not
applicable, 1 yes / opted out / no consent, 2 no / did not opt out / consent), and for some
states an optional GPC subsection. The layouts below are version 1 of each section as the
IAB's GPP encoder libraries define them (field order and list lengths). A section whose
version is not one we know is refused on its own (`UnsupportedSection`): the rest of the GPP
string still applies.

The rule (`us_opt_out`), after Prebid Server's GPP "phase 4" normalisation of the state
sections onto US national fields: a section restricts the request (no personalisation, no
ids, coarse geo) when it says the user opted out of the sale of personal data, of sharing,
or of targeted advertising; when any sensitive-data field says no consent / opted out (we
cannot tell which of our segments are sensitive, so we use none); when a known child's data
is signalled at all (with or without a parent's consent); when the transaction is in MSPA
service-provider mode (no sale, sharing or targeted ads for the publisher); or when its GPC
subsection is set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from compliance.bits import BitReader, DecodeError

__all__ = [
    "STATE_SECTIONS",
    "UnsupportedSection",
    "UnsupportedVersion",
    "UsStateSection",
    "decode_state_section",
]

NOTICE_FIELDS = {
    "SharingNotice", "ProcessingNotice", "SaleOptOutNotice", "TargetedAdvertisingOptOutNotice",
    "SensitiveDataProcessingOptOutNotice", "SensitiveDataOptOutNotice",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Layout:
    name: str  # the client-side API prefix, e.g. "usva"
    fields: tuple[tuple[str, int], ...]  # (field, how many 2-bit values)
    gpc: bool  # whether a GPC subsection is defined


def _layout(
    name: str,
    notices: tuple[str, ...],
    sensitive: int,
    children: int,
    *,
    additional: bool,
    gpc: bool,
) -> Layout:
    fields = [(notice, 1) for notice in notices]
    fields += [("SaleOptOut", 1), ("TargetedAdvertisingOptOut", 1)]
    fields += [
        ("SensitiveDataProcessing", sensitive),
        ("KnownChildSensitiveDataConsents", children),
    ]
    if additional:
        fields.append(("AdditionalDataProcessingConsent", 1))
    fields += [("MspaCoveredTransaction", 1), ("MspaOptOutOptionMode", 1)]
    fields.append(("MspaServiceProviderMode", 1))
    return Layout(name, tuple(fields), gpc)


_SHARING = ("SharingNotice", "SaleOptOutNotice", "TargetedAdvertisingOptOutNotice")
_PROCESSING = ("ProcessingNotice", "SaleOptOutNotice", "TargetedAdvertisingOptOutNotice")

# Section id → version 1 layout. Verified against the IAB encoder's segment definitions.
STATE_SECTIONS: Mapping[int, Layout] = MappingProxyType({
    9: _layout("usva", _SHARING, 8, 1, additional=False, gpc=False),
    10: _layout("usco", _SHARING, 7, 1, additional=False, gpc=True),
    11: _layout("usut", (*_SHARING, "SensitiveDataProcessingOptOutNotice"), 8, 1,
                additional=False, gpc=False),
    12: _layout("usct", _SHARING, 8, 3, additional=False, gpc=True),
    13: _layout("usfl", _PROCESSING, 8, 3, additional=True, gpc=False),
    14: _layout("usmt", _SHARING, 8, 3, additional=True, gpc=True),
    15: _layout("usor", _PROCESSING, 11, 3, additional=True, gpc=True),
    16: _layout("ustx", _PROCESSING, 8, 1, additional=True, gpc=True),
    17: _layout("usde", _PROCESSING, 9, 5, additional=True, gpc=True),
    18: _layout("usia", (*_PROCESSING, "SensitiveDataOptOutNotice"), 8, 1,
                additional=False, gpc=True),
    19: _layout("usne", _PROCESSING, 8, 1, additional=True, gpc=True),
    20: _layout("usnh", _PROCESSING, 8, 3, additional=True, gpc=True),
    21: _layout("usnj", _PROCESSING, 10, 5, additional=True, gpc=True),
    22: _layout("ustn", _PROCESSING, 8, 1, additional=True, gpc=True),
})  # fmt: skip
STATE_VERSIONS = frozenset({1})


class UnsupportedVersion(DecodeError):
    """A US section in a version we do not know: refused alone, not the whole string."""


@dataclass(frozen=True, slots=True)
class UnsupportedSection:
    """A section we could not read because of its version; it restricts the request."""

    section_id: int
    version: int


@dataclass(frozen=True, slots=True)
class UsStateSection:
    """One decoded US state section: each field's values, and its GPC bit when sent."""

    section_id: int
    name: str
    version: int
    fields: Mapping[str, tuple[int, ...]]
    gpc: bool | None = None

    def value(self, field: str) -> int:
        """A single-valued field (0 when the section does not have it)."""
        return self.fields.get(field, (0,))[0]


def decode_state_section(section_id: int, text: str) -> UsStateSection:
    """Decode section 9 to 22; UnsupportedVersion for an unknown version, DecodeError else."""
    layout = STATE_SECTIONS[section_id]
    core_text, *subsections = text.split(".")
    reader = BitReader(core_text, what=f"{layout.name} core")
    version = reader.read_int(6, "Version")
    if version not in STATE_VERSIONS:
        raise UnsupportedVersion(f"{layout.name} version {version} is not supported; only 1 is")
    fields: dict[str, tuple[int, ...]] = {}
    for field, count in layout.fields:
        values = []
        for index in range(count):
            value = reader.read_int(2, field)
            if value == 3:
                raise reader.fail(f"{field}[{index + 1}] is 3, which is undefined")
            values.append(value)
        fields[field] = tuple(values)
    reader.expect_padding()
    gpc: bool | None = None
    if subsections:
        if not layout.gpc or len(subsections) > 1:
            raise DecodeError(f"{layout.name} has a subsection it does not define")
        sub = BitReader(subsections[0], what=f"{layout.name} GPC subsection")
        if (kind := sub.read_int(2, "SubsectionType")) != 1:
            raise sub.fail(f"subsection type {kind} is not GPC (1)")
        gpc = sub.read_bool("Gpc")
        sub.expect_padding()
    return UsStateSection(section_id, layout.name, version, MappingProxyType(fields), gpc)


def us_opt_out(section: object) -> str:
    """The first reason a US section (usnat, usca or a state) restricts the request, or ""."""
    if isinstance(section, UnsupportedSection):
        return "unsupported_version"
    fields = _normalised(section)
    if fields is None:
        return ""
    single = {name: values[0] for name, values in fields.items() if len(values) == 1}
    for name, reason in (("SaleOptOut", "sale"), ("SharingOptOut", "sharing"),
                         ("TargetedAdvertisingOptOut", "targeted_ads")):  # fmt: skip
        if single.get(name) == 1:
            return reason
    if 1 in fields.get("SensitiveDataProcessing", ()):
        return "sensitive_data"
    if any(fields.get("KnownChildSensitiveDataConsents", ())):
        return "known_child"
    if single.get("MspaServiceProviderMode") == 1:
        return "service_provider_mode"
    if getattr(section, "gpc", None) is True:
        return "gpc"
    return ""


def _normalised(section: object) -> Mapping[str, tuple[int, ...]] | None:
    """A section's fields by their GPP names, whatever class decoded it."""
    if isinstance(section, UsStateSection):
        return section.fields
    # usnat and usca (compliance.gpp) carry the same fields as attributes.
    names = {
        "SaleOptOut": "sale_opt_out",
        "SharingOptOut": "sharing_opt_out",
        "TargetedAdvertisingOptOut": "targeted_advertising_opt_out",
        "SensitiveDataProcessing": "sensitive_data_processing",
        "KnownChildSensitiveDataConsents": "known_child_sensitive_data_consents",
        "MspaServiceProviderMode": "mspa_service_provider_mode",
    }
    if not hasattr(section, "sale_opt_out"):
        return None
    fields: dict[str, tuple[int, ...]] = {}
    for gpp_name, attribute in names.items():
        value = getattr(section, attribute, None)
        if value is not None:
            fields[gpp_name] = tuple(value) if isinstance(value, tuple) else (value,)
    return fields
