"""Cell encodings: each parses strictly and formats back to the same text."""

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from campaigns.bulk import codecs as c
from campaigns.bulk.sheet import escape, unescape
from campaigns.models import PacingMode

PARIS = ZoneInfo("Europe/Paris")


def test_dayparts_parse_ranges_and_single_days_and_format_back() -> None:
    text = "0-4 07:00-10:00;5,6 10:00-22:00"

    parts = c.Dayparts().parse(text, PARIS)

    assert parts == [
        {"days": [0, 1, 2, 3, 4], "start": "07:00", "end": "10:00"},
        {"days": [5, 6], "start": "10:00", "end": "22:00"},
    ]
    assert c.Dayparts().format(parts, PARIS) == text
    every_day_but = [{"days": [0, 2, 3, 4, 6], "start": "00:00", "end": "24:00"}]
    assert c.Dayparts().format(every_day_but, PARIS) == "0,2-4,6 00:00-24:00"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mon-fri 07:00-10:00", "'mon-fri 07:00-10:00' is not a daypart like 0-4 07:00-10:00."),
        ("0-4 7:00-10:00", "'0-4 7:00-10:00': times look like 07:30."),
        ("4-0 07:00-10:00", "'4-0 07:00-10:00': the day range 4-0 runs backwards."),
        ("0,1,1 07:00-10:00", "'0,1,1 07:00-10:00': day 1 appears twice."),
        ("0-7 07:00-10:00", "'0-7 07:00-10:00': days are 0 (Monday) to 6 (Sunday)."),
        ("0 07:00-10:00;", "'0 07:00-10:00;' has an empty entry: separate entries with one ;."),
    ],
)
def test_dayparts_refuse_anything_else(text: str, message: str) -> None:
    with pytest.raises(c.CellError) as error:
        c.Dayparts().parse(text, PARIS)

    assert str(error.value) == message


def test_frequency_caps_are_count_slash_period() -> None:
    caps = c.FrequencyCaps().parse("3/day; 10/Lifetime", PARIS)

    assert caps == [{"count": 3, "period": "day"}, {"count": 10, "period": "lifetime"}]
    assert c.FrequencyCaps().format(caps, PARIS) == "3/day;10/lifetime"
    with pytest.raises(c.CellError, match=r"^'3 per day' is not a cap like 3/day\.$"):
        c.FrequencyCaps().parse("3 per day", PARIS)


def test_times_without_an_offset_are_in_the_organisations_time_zone() -> None:
    local = c.DateTime().parse("2027-03-01T09:00", PARIS)
    explicit = c.DateTime().parse("2027-03-01T09:00+00:00", PARIS)
    summer = c.DateTime().parse("2027-07-01", PARIS)

    assert local == datetime(2027, 3, 1, 8, 0, tzinfo=UTC)
    assert explicit == datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
    assert summer == datetime(2027, 6, 30, 22, 0, tzinfo=UTC)
    assert c.DateTime().format(local, PARIS) == "2027-03-01T09:00:00+01:00"
    with pytest.raises(c.CellError) as error:
        c.DateTime().parse("01/03/2027 09:00", PARIS)
    assert str(error.value) == (
        "'01/03/2027 09:00' is not an ISO 8601 date and time like 2026-03-01T09:00 "
        "(Europe/Paris time) or 2026-03-01T09:00+01:00."
    )


def test_numbers_use_a_dot_and_format_with_at_least_two_decimals() -> None:
    number = c.DecimalCodec()

    assert number.parse("12.5", PARIS) == Decimal("12.5")
    assert number.format(Decimal("50.0000"), PARIS) == "50.00"
    assert number.format(Decimal("0.1234"), PARIS) == "0.1234"
    for bad in ("1,50", "$3", "1e3", "NaN"):
        with pytest.raises(c.CellError):
            number.parse(bad, PARIS)


def test_lists_split_on_semicolons_and_refuse_empty_entries() -> None:
    assert c.StringList("upper").parse("us; de", PARIS) == ["US", "DE"]
    assert c.IntegerList().parse("2;4", PARIS) == [2, 4]
    with pytest.raises(c.CellError, match=r"^Not whole numbers: pc\.$"):
        c.IntegerList().parse("2;pc", PARIS)
    with pytest.raises(c.CellError, match="has an empty entry"):
        c.StringList().parse("a;;b", PARIS)


def test_choices_and_yes_no_are_strict_but_ignore_letter_case() -> None:
    pacing = c.Choice(PacingMode, "pacing mode")

    assert pacing.parse("ASAP", PARIS) == "asap"
    assert c.YesNo().parse("Yes", PARIS) is True
    with pytest.raises(c.CellError) as error:
        pacing.parse("fast", PARIS)
    assert str(error.value) == "Unknown pacing mode 'fast' (use even, frontloaded, asap)."
    with pytest.raises(c.CellError, match=r"^'true' is not yes or no\.$"):
        c.YesNo().parse("true", PARIS)


def test_formula_cells_are_escaped_and_the_escape_is_taken_off() -> None:
    for value in ("=HYPERLINK(1)", "+1", "-sale", "@user"):
        assert escape(value) == "'" + value
        assert unescape(escape(value)) == value
    assert escape("'Tis the season") == "'Tis the season"
    assert unescape("'Tis the season") == "'Tis the season"
