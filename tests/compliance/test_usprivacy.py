import pytest

from compliance.usprivacy import DecodeError, UsPrivacy, parse_us_privacy


@pytest.mark.parametrize(
    ("text", "expected", "opted_out"),
    [
        # The examples in the IAB US Privacy string specification.
        ("1YNN", UsPrivacy(1, notice=True, opt_out_of_sale=False, lspa_covered=False), False),
        ("1NYN", UsPrivacy(1, notice=False, opt_out_of_sale=True, lspa_covered=False), True),
        ("1YYY", UsPrivacy(1, notice=True, opt_out_of_sale=True, lspa_covered=True), True),
        ("1-Y-", UsPrivacy(1, notice=None, opt_out_of_sale=True, lspa_covered=None), True),
        ("1---", UsPrivacy(1, notice=None, opt_out_of_sale=None, lspa_covered=None), False),
    ],
)
def test_valid_strings(text: str, expected: UsPrivacy, opted_out: bool) -> None:
    parsed = parse_us_privacy(text)

    assert parsed == expected
    assert parsed.opted_out is opted_out
    assert str(parsed) == text


def test_dashes_everywhere_mean_ccpa_does_not_apply() -> None:
    assert parse_us_privacy("1---").applies is False
    assert parse_us_privacy("1-N-").applies is True


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "4 characters, not 0"),
        ("1YN", "4 characters, not 3"),
        ("1YNNN", "4 characters, not 5"),
        ("2YNN", "version '2' is not supported"),
        ("1ynn", "character 2 is 'y'"),
        ("1YXN", "character 3 is 'X'"),
        ("1YN ", "character 4 is ' '"),
    ],
)
def test_invalid_strings_say_why(text: str, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        parse_us_privacy(text)
