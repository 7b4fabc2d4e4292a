import re
from datetime import UTC, datetime

import pytest

from compliance.bits import BitReader, DecodeError, TruncatedError, to_bits
from tests.compliance.tcf_encoder import BitWriter


def test_each_character_is_six_bits_in_the_url_safe_alphabet() -> None:
    assert to_bits("A") == "000000"
    assert to_bits("C") == "000010"
    assert to_bits("-_") == "111110111111"
    assert to_bits("a9") == "011010111101"


@pytest.mark.parametrize(("text", "bad"), [("AB+C", "'+'"), ("AB/C", "'/'"), ("ABC=", "'='")])
def test_characters_outside_base64url_are_rejected_with_their_position(text: str, bad: str) -> None:
    with pytest.raises(DecodeError, match=re.escape(f"{bad} at position")):
        BitReader(text)


def test_an_empty_segment_is_rejected() -> None:
    with pytest.raises(DecodeError, match="core segment is empty"):
        BitReader("", what="core segment")


def test_reads_fields_in_order() -> None:
    text = BitWriter().uint(2, 6).flag(True).letters("EN").uint(777, 12).encode()
    reader = BitReader(text)

    assert reader.read_int(6, "Version") == 2
    assert reader.read_bool("Flag") is True
    assert reader.read_letters(2, "Language") == "EN"
    assert reader.read_int(12, "Number") == 777
    assert reader.remaining == 5  # 31 bits written, 36 in six characters


def test_a_read_past_the_end_names_the_field() -> None:
    reader = BitReader("AAA", what="core segment")
    reader.read_int(12, "First")

    with pytest.raises(TruncatedError, match="core segment: CmpId needs 12 more bits") as caught:
        reader.read_int(12, "CmpId")
    assert caught.value.field == "CmpId"
    assert isinstance(caught.value, ValueError)


def test_a_failed_read_consumes_nothing() -> None:
    reader = BitReader("A")

    with pytest.raises(TruncatedError):
        reader.read_int(7, "Wide")
    assert reader.read_int(6, "Narrow") == 0


def test_letters_above_z_are_rejected() -> None:
    with pytest.raises(DecodeError, match="Language 26 is not a letter"):
        BitReader("a").read_letters(1, "Language")


def test_datetimes_are_utc_deciseconds_since_the_epoch() -> None:
    moment = datetime(2020, 2, 27, 19, 51, 49, 600_000, tzinfo=UTC)
    text = BitWriter().timestamp(moment).encode()

    assert BitReader(text).read_datetime("Created") == moment


def test_bitfields_give_one_based_positions() -> None:
    reader = BitReader(BitWriter().bitfield({1, 3, 24}, 24).bitfield({2, 3, 4, 9}, 10).encode())

    assert reader.read_bitfield(24, "Purposes") == {1, 3, 24}
    assert reader.read_bitfield_runs(10, "Vendors") == ((2, 4), (9, 9))


@pytest.mark.parametrize(
    ("code", "value"),
    # The table in the GPP consent string specification.
    [("11", 1), ("011", 2), ("0011", 3), ("1011", 4), ("00011", 5), ("10011", 6), ("01011", 7)],
)
def test_fibonacci_codes_from_the_gpp_specification(code: str, value: int) -> None:
    bits = code + "0" * (-len(code) % 6)
    text = BitWriter()
    text.bits.append(bits)

    assert BitReader(text.encode()).read_fibonacci("Offset") == value


def test_fibonacci_round_trips_large_values() -> None:
    values = [1, 2, 8, 100, 4000, 123_456]
    writer = BitWriter()
    for value in values:
        writer.fibonacci(value)
    reader = BitReader(writer.encode())

    assert [reader.read_fibonacci("Offset") for _ in values] == values


def test_a_fibonacci_code_without_its_terminator_is_truncated() -> None:
    with pytest.raises(TruncatedError, match="Offset"):
        BitReader("Q").read_fibonacci("Offset")  # 010000: never reaches "11"


def test_padding_must_be_zero() -> None:
    reader = BitReader("CA")
    reader.read_int(6, "Version")
    reader.expect_padding()

    dirty = BitReader("CB", what="core segment")
    dirty.read_int(6, "Version")
    with pytest.raises(DecodeError, match="core segment: unexpected data after the last field"):
        dirty.expect_padding()
