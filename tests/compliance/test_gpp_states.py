"""GPP US state sections 9-22 (issue 13 item 13): decoded from their layouts, judged by one
opt-out rule, an unknown version refusing only its own section."""

import pytest

from compliance.bits import DecodeError
from compliance.gpp import UsNational, decode_gpp
from compliance.gpp_states import STATE_SECTIONS, UnsupportedSection, UsStateSection
from compliance.policy import PrivacySignals, evaluate
from tests.compliance.gpp_encoder import encode_gpp, encode_state, encode_usnat
from tests.compliance.test_policy import US, usnat

ALL_STATES = sorted(STATE_SECTIONS)


def test_every_state_section_from_virginia_to_tennessee_has_a_layout() -> None:
    assert list(range(9, 23)) == ALL_STATES
    names = [STATE_SECTIONS[i].name for i in ALL_STATES]
    assert names == ["usva", "usco", "usut", "usct", "usfl", "usmt", "usor", "ustx", "usde",
                     "usia", "usne", "usnh", "usnj", "ustn"]  # fmt: skip


@pytest.mark.parametrize("section_id", ALL_STATES)
def test_each_state_section_decodes_field_by_field(section_id: int) -> None:
    layout = STATE_SECTIONS[section_id]
    values = {field: [1 + (n % 2) for n in range(count)] for field, count in layout.fields}
    text = encode_gpp({section_id: encode_state(section_id, values)})
    section = decode_gpp(text).sections[section_id]
    assert isinstance(section, UsStateSection)
    assert (section.name, section.version, section.gpc) == (layout.name, 1, None)
    assert {f: list(v) for f, v in section.fields.items()} == values


def test_known_layouts_match_the_published_field_counts() -> None:
    def count(section_id: int, field: str) -> int:
        return dict(STATE_SECTIONS[section_id].fields)[field]

    assert count(9, "SensitiveDataProcessing") == 8  # Virginia
    assert count(10, "SensitiveDataProcessing") == 7  # Colorado
    assert count(12, "KnownChildSensitiveDataConsents") == 3  # Connecticut
    assert count(15, "SensitiveDataProcessing") == 11  # Oregon
    assert count(21, "SensitiveDataProcessing") == 10  # New Jersey
    assert count(17, "KnownChildSensitiveDataConsents") == 5  # Delaware
    assert "SensitiveDataProcessingOptOutNotice" in dict(STATE_SECTIONS[11].fields)  # Utah
    assert not STATE_SECTIONS[9].gpc and STATE_SECTIONS[10].gpc


def signals(section_id: int, **fields: list[int]) -> PrivacySignals:
    text = encode_gpp({section_id: encode_state(section_id, fields)})
    return PrivacySignals(gpp=text, gpp_sid=(section_id,))


@pytest.mark.parametrize("section_id", ALL_STATES)
@pytest.mark.parametrize(
    ("fields", "restricted"),
    [
        ({}, False),
        ({"SaleOptOut": [2], "TargetedAdvertisingOptOut": [2]}, False),
        ({"SaleOptOut": [1]}, True),
        ({"TargetedAdvertisingOptOut": [1]}, True),
        ({"MspaServiceProviderMode": [1]}, True),
    ],
)
def test_one_opt_out_rule_for_every_state(
    section_id: int, fields: dict[str, list[int]], restricted: bool
) -> None:
    p = evaluate(signals(section_id, **fields), US)
    assert p.personalise is not restricted
    assert (p.reason == "gpp_us_opt_out") is restricted


def test_sensitive_data_and_known_children_restrict() -> None:
    sensitive = [0] * 7 + [1]
    assert evaluate(signals(9, SensitiveDataProcessing=sensitive), US).reason == "gpp_us_opt_out"
    assert evaluate(signals(12, KnownChildSensitiveDataConsents=[0, 2, 0]), US).reason == (
        "gpp_us_opt_out"
    )
    assert evaluate(signals(9, SensitiveDataProcessing=[2] * 8), US).personalise


def test_a_state_section_only_counts_when_gpp_sid_lists_it() -> None:
    text = encode_gpp({9: encode_state(9, {"SaleOptOut": [1]})})
    assert evaluate(PrivacySignals(gpp=text, gpp_sid=(7,)), US).personalise
    assert not evaluate(PrivacySignals(gpp=text, gpp_sid=(9,)), US).personalise


def test_the_gpc_subsection_of_a_state_restricts() -> None:
    text = encode_gpp({10: encode_state(10, gpc=True)})
    assert decode_gpp(text).sections[10].gpc is True  # type: ignore[union-attr]
    assert not evaluate(PrivacySignals(gpp=text, gpp_sid=(10,)), US).personalise
    with pytest.raises(DecodeError, match="usva has a subsection"):
        decode_gpp(encode_gpp({9: encode_state(9, gpc=True)}))


def test_an_unknown_version_refuses_only_that_section() -> None:
    future_usnat = encode_usnat(
        UsNational(**{**usnat_fields(), "version": 9})  # type: ignore[arg-type]
    )
    text = encode_gpp({6: "1YNN", 7: future_usnat, 9: encode_state(9, version=2)})
    decoded = decode_gpp(text)  # the string as a whole is still valid
    assert decoded.sections[7] == UnsupportedSection(7, 9)
    assert decoded.sections[9] == UnsupportedSection(9, 2)
    assert str(decoded.us_privacy) == "1YNN"
    # An unreadable section that applies is not ignored: its user may have opted out.
    p = evaluate(PrivacySignals(gpp=text, gpp_sid=(9,)), US)
    assert (p.serve, p.personalise, p.reason) == (True, False, "gpp_section_unsupported")
    # One that does not apply changes nothing.
    assert evaluate(PrivacySignals(gpp=text, gpp_sid=(6,)), US).personalise


def test_usnat_version_2_is_decoded() -> None:
    fields = usnat_fields()
    v2 = UsNational(**{**fields, "version": 2, "sensitive_data_processing": (0,) * 16,
                       "known_child_sensitive_data_consents": (0, 0, 0)})  # type: ignore[arg-type]  # fmt: skip
    section = decode_gpp(encode_gpp({7: encode_usnat(v2)})).us_national
    assert section is not None and section.version == 2
    assert len(section.sensitive_data_processing) == 16


def usnat_fields() -> dict[str, object]:
    decoded = decode_gpp(usnat()).us_national
    assert decoded is not None
    return {name: getattr(decoded, name) for name in UsNational.__slots__}
