"""One textual encoding per field type: parse a cell strictly, format a value back the same way.

`parse(text, tz)` gets a stripped, non-empty cell and raises `CellError` with a message for the
user; `format(value, tz)` gives the cell text, and parse(format(v)) == v for stored values.
"""

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from django.db import models

LIST_SEPARATOR = ";"
DECIMAL_RE = re.compile(r"^[+-]?[0-9]+(\.[0-9]+)?$")
INTEGER_RE = re.compile(r"^[0-9]+$")
CAP_RE = re.compile(r"^([0-9]+)/([a-z]+)$")
# "0-4 07:00-10:00": days (0 is Monday; single days and ranges, comma-separated), a space,
# then start-end in 24-hour time.
DAYPART_RE = re.compile(
    r"^(?P<days>[0-9](?:-[0-9])?(?:,[0-9](?:-[0-9])?)*)\s+(?P<start>[0-9:]+)-(?P<end>[0-9:]+)$"
)
TIME_RE = re.compile(r"^[0-9]{2}:[0-9]{2}$")


class CellError(ValueError):
    """A cell that does not follow its column's encoding."""


class Codec(Protocol):
    def parse(self, text: str, tz: ZoneInfo) -> Any: ...

    def format(self, value: Any, tz: ZoneInfo) -> str: ...


class Text:
    def parse(self, text: str, tz: ZoneInfo) -> str:
        return text

    def format(self, value: Any, tz: ZoneInfo) -> str:
        return "" if value is None else str(value)


class UpperText(Text):
    def parse(self, text: str, tz: ZoneInfo) -> str:
        return text.upper()


class DecimalCodec:
    def parse(self, text: str, tz: ZoneInfo) -> Decimal:
        if not DECIMAL_RE.match(text):
            raise CellError(f"{text!r} is not a number like 12.50 (no currency sign or commas).")
        try:
            return Decimal(text)
        except InvalidOperation as exc:  # pragma: no cover - the pattern admits only numbers
            raise CellError(f"{text!r} is not a number.") from exc

    def format(self, value: Any, tz: ZoneInfo) -> str:
        if value is None:
            return ""
        # Stored with four places; show at least two ("50.00") and no trailing zeros beyond.
        cents = value.quantize(Decimal("0.01"))
        return f"{cents if cents == value else value.normalize():f}"


class Integer:
    def parse(self, text: str, tz: ZoneInfo) -> int:
        if not INTEGER_RE.match(text):
            raise CellError(f"{text!r} is not a whole number.")
        return int(text)

    def format(self, value: Any, tz: ZoneInfo) -> str:
        return "" if value is None else str(value)


class YesNo:
    def parse(self, text: str, tz: ZoneInfo) -> bool:
        answer = text.lower()
        if answer not in ("yes", "no"):
            raise CellError(f"{text!r} is not yes or no.")
        return answer == "yes"

    def format(self, value: Any, tz: ZoneInfo) -> str:
        return "yes" if value else "no"


class DateTime:
    """ISO 8601; without an offset the time is in the organisation's time zone."""

    def parse(self, text: str, tz: ZoneInfo) -> datetime:
        try:
            value = datetime.fromisoformat(text)
        except ValueError as exc:
            raise CellError(
                f"{text!r} is not an ISO 8601 date and time like 2026-03-01T09:00 "
                f"({tz.key} time) or 2026-03-01T09:00+01:00."
            ) from exc
        return value if value.tzinfo is not None else value.replace(tzinfo=tz)

    def format(self, value: Any, tz: ZoneInfo) -> str:
        return "" if value is None else value.astimezone(tz).isoformat()


@dataclass(frozen=True)
class Choice:
    """A choice by its stored value (`even`, `dynamic_down`), in any letter case."""

    choices: type[models.TextChoices]
    what: str

    def parse(self, text: str, tz: ZoneInfo) -> str:
        value = text.lower()
        allowed = [c for c in self.choices.values if c]
        if value not in allowed:
            raise CellError(f"Unknown {self.what} {text!r} (use {', '.join(allowed)}).")
        return value

    def format(self, value: Any, tz: ZoneInfo) -> str:
        return str(value or "")


def split_list(text: str) -> list[str]:
    items = [item.strip() for item in text.split(LIST_SEPARATOR)]
    if not all(items):
        raise CellError(f"{text!r} has an empty entry: separate entries with one ;.")
    return items


@dataclass(frozen=True)
class StringList:
    """`a;b;c`; entries are trimmed, and may be folded to one letter case."""

    case: str = ""  # "upper", "lower" or "" to keep

    def parse(self, text: str, tz: ZoneInfo) -> list[str]:
        items = split_list(text)
        if self.case == "upper":
            return [item.upper() for item in items]
        if self.case == "lower":
            return [item.lower() for item in items]
        return items

    def format(self, value: Any, tz: ZoneInfo) -> str:
        return LIST_SEPARATOR.join(str(item) for item in value or [])


class IntegerList:
    def parse(self, text: str, tz: ZoneInfo) -> list[int]:
        items = split_list(text)
        bad = [item for item in items if not INTEGER_RE.match(item)]
        if bad:
            raise CellError(f"Not whole numbers: {', '.join(bad)}.")
        return [int(item) for item in items]

    def format(self, value: Any, tz: ZoneInfo) -> str:
        return LIST_SEPARATOR.join(str(item) for item in value or [])


class FrequencyCaps:
    """`3/day;10/lifetime`: impressions per period (minute, hour, day, lifetime)."""

    def parse(self, text: str, tz: ZoneInfo) -> list[dict[str, Any]]:
        caps = []
        for item in split_list(text):
            match = CAP_RE.match(item.lower())
            if match is None:
                raise CellError(f"{item!r} is not a cap like 3/day.")
            caps.append({"count": int(match[1]), "period": match[2]})
        return caps

    def format(self, value: Any, tz: ZoneInfo) -> str:
        return LIST_SEPARATOR.join(f"{cap['count']}/{cap['period']}" for cap in value or [])


def _days(spec: str, item: str) -> list[int]:
    days: list[int] = []
    for part in spec.split(","):
        first, _, last = part.partition("-")
        start, end = int(first), int(last or first)
        if start > end:
            raise CellError(f"{item!r}: the day range {part} runs backwards.")
        days.extend(range(start, end + 1))
    repeated = sorted({d for d in days if days.count(d) > 1})
    if repeated:
        raise CellError(f"{item!r}: day {repeated[0]} appears twice.")
    if any(d > 6 for d in days):
        raise CellError(f"{item!r}: days are 0 (Monday) to 6 (Sunday).")
    return days


def _format_days(days: list[int]) -> str:
    if days != sorted(set(days)):
        return ",".join(map(str, days))
    # Runs of three or more consecutive days read better as ranges: 0-4,6.
    parts: list[str] = []
    run: list[int] = []
    for day in [*days, -2]:
        if run and day == run[-1] + 1:
            run.append(day)
            continue
        if len(run) >= 3:
            parts.append(f"{run[0]}-{run[-1]}")
        else:
            parts.extend(map(str, run))
        run = [day]
    return ",".join(parts)


class Dayparts:
    """`0-4 07:00-10:00;5,6 10:00-22:00`: days (0 is Monday), a space, start-end."""

    def parse(self, text: str, tz: ZoneInfo) -> list[dict[str, Any]]:
        parts = []
        for item in split_list(text):
            match = DAYPART_RE.match(item)
            if match is None:
                raise CellError(f"{item!r} is not a daypart like 0-4 07:00-10:00.")
            if not (TIME_RE.match(match["start"]) and TIME_RE.match(match["end"])):
                raise CellError(f"{item!r}: times look like 07:30.")
            days = _days(match["days"], item)
            parts.append({"days": days, "start": match["start"], "end": match["end"]})
        return parts

    def format(self, value: Any, tz: ZoneInfo) -> str:
        return LIST_SEPARATOR.join(
            f"{_format_days(p['days'])} {p['start']}-{p['end']}" for p in value or []
        )
