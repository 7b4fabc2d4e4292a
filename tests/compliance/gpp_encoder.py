"""A small GPP encoder for tests: the header's Fibonacci range and the usnat/usca sections."""

from __future__ import annotations

from compliance.gpp import UsCalifornia, UsNational
from tests.compliance.tcf_encoder import BitWriter


def encode_header(section_ids: list[int], *, header_type: int = 3, version: int = 1) -> str:
    """Type, Version, then the ids as a Fibonacci range: consecutive ids become groups."""
    runs: list[list[int]] = []
    for section_id in section_ids:
        if runs and section_id == runs[-1][1] + 1:
            runs[-1][1] = section_id
        else:
            runs.append([section_id, section_id])
    writer = BitWriter().uint(header_type, 6).uint(version, 6).uint(len(runs), 12)
    last = 0
    for start, end in runs:
        writer.flag(start != end).fibonacci(start - last)
        if start != end:
            writer.fibonacci(end - start)
        last = end
    return writer.encode()


def encode_gpc(gpc: bool | None, *, subsection_type: int = 1) -> str:
    """The "." and GPC subsection, or nothing when gpc is None."""
    if gpc is None:
        return ""
    return "." + BitWriter().uint(subsection_type, 2).flag(gpc).encode()


def encode_usnat(section: UsNational) -> str:
    writer = BitWriter().uint(section.version, 6)
    for value in (
        section.sharing_notice,
        section.sale_opt_out_notice,
        section.sharing_opt_out_notice,
        section.targeted_advertising_opt_out_notice,
        section.sensitive_data_processing_opt_out_notice,
        section.sensitive_data_limit_use_notice,
        section.sale_opt_out,
        section.sharing_opt_out,
        section.targeted_advertising_opt_out,
        *section.sensitive_data_processing,
        *section.known_child_sensitive_data_consents,
        section.personal_data_consents,
        section.mspa_covered_transaction,
        section.mspa_opt_out_option_mode,
        section.mspa_service_provider_mode,
    ):
        writer.uint(value, 2)
    return writer.encode() + encode_gpc(section.gpc)


def encode_usca(section: UsCalifornia) -> str:
    writer = BitWriter().uint(section.version, 6)
    for value in (
        section.sale_opt_out_notice,
        section.sharing_opt_out_notice,
        section.sensitive_data_limit_use_notice,
        section.sale_opt_out,
        section.sharing_opt_out,
        *section.sensitive_data_processing,
        *section.known_child_sensitive_data_consents,
        section.personal_data_consents,
        section.mspa_covered_transaction,
        section.mspa_opt_out_option_mode,
        section.mspa_service_provider_mode,
    ):
        writer.uint(value, 2)
    return writer.encode() + encode_gpc(section.gpc)


def encode_gpp(sections: dict[int, str]) -> str:
    """A whole GPP string from already-encoded sections, in id order."""
    ids = sorted(sections)
    return "~".join([encode_header(ids), *(sections[section_id] for section_id in ids)])


def encode_state(section_id: int, values: dict[str, list[int]] | None = None, *,
                 version: int = 1, gpc: bool | None = None) -> str:  # fmt: skip
    """A US state section (9-22): every field 0 but MspaCoveredTransaction (2, "no"), then
    `values` laid over it (field → its 2-bit values)."""
    from compliance.gpp_states import STATE_SECTIONS

    writer = BitWriter().uint(version, 6)
    for field, count in STATE_SECTIONS[section_id].fields:
        default = [2] if field == "MspaCoveredTransaction" else [0] * count
        given = (values or {}).get(field, default)
        assert len(given) == count, (field, count)
        for value in given:
            writer.uint(value, 2)
    return writer.encode() + encode_gpc(gpc)
