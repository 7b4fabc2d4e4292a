"""Exchange-rate tables in plain Python: the `FX_RATES` setting and ECB reference-rate XML.

A table maps an ISO 4217 code to how many units of the platform currency
(`SERVING_CURRENCY`) one unit of it is worth: with USD as the platform currency,
`{"EUR": Decimal("1.10")}` says one euro buys 1.10 dollars. Nothing here imports Django, so
that settings can parse `FX_RATES` at start and refuse a bad value there.
"""

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from lxml import etree

__all__ = ["EcbRates", "FxError", "parse_ecb_xml", "parse_fx_setting"]

_CODE = re.compile(r"^[A-Z]{3}$")
# The eurofxref files are a few kilobytes; anything this large is not one.
MAX_FEED_BYTES = 1 << 20
_ECB_NS = "http://www.ecb.int/vocabulary/2002-08-01/eurofxref"


class FxError(ValueError):
    """A rate table that cannot be used; the message names what is wrong."""


def _rate(text: str, where: str) -> Decimal:
    try:
        rate = Decimal(text.strip())
    except InvalidOperation:
        raise FxError(f"{where}: {text.strip()!r} is not a number") from None
    if not rate.is_finite() or rate <= 0:
        raise FxError(f"{where}: {text.strip()!r} is not a positive rate")
    return rate


def parse_fx_setting(text: str, setting: str = "FX_RATES") -> dict[str, Decimal]:
    """`EUR=1.10,GBP=1.27` as a table; an empty value is an empty table.

    Every malformed item raises FxError naming it: a typo must stop the server at start, not
    leave a currency at a silent rate of 1 or unpriced."""
    rates: dict[str, Decimal] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        code, sep, value = item.partition("=")
        code = code.strip().upper()
        if not sep:
            raise FxError(f"{setting}: {item.strip()!r} is not CODE=RATE (e.g. EUR=1.10)")
        if not _CODE.match(code):
            raise FxError(f"{setting}: {code!r} is not an ISO 4217 currency code")
        if code in rates:
            raise FxError(f"{setting}: {code} is given twice")
        rates[code] = _rate(value, f"{setting} {code}")
    return rates


@dataclass(frozen=True, slots=True)
class EcbRates:
    """One day's reference rates, converted into the platform currency."""

    day: date
    rates: dict[str, Decimal]


def parse_ecb_xml(data: bytes, platform_currency: str) -> EcbRates:
    """The ECB's `eurofxref-daily.xml` (or the newest day of a `-hist` file) as a table.

    The ECB quotes every currency against the euro (1 EUR = `rate` units of it), so for a
    platform currency P the rate of C is rate(P) / rate(C), and the euro's is rate(P)."""
    if len(data) > MAX_FEED_BYTES:
        raise FxError(f"the reference-rate file is larger than {MAX_FEED_BYTES} bytes")
    # No entities, no DTDs, no network: the file comes from outside.
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as error:
        raise FxError(f"the reference-rate file is not XML: {error}") from None
    days = root.findall(f".//{{{_ECB_NS}}}Cube[@time]")
    if not days:
        raise FxError("the reference-rate file has no <Cube time=...> element")
    newest = max(days, key=lambda cube: cube.get("time", ""))
    try:
        day = date.fromisoformat(newest.get("time", ""))
    except ValueError:
        raise FxError(f"the reference-rate date {newest.get('time')!r} is not a date") from None
    per_euro: dict[str, Decimal] = {"EUR": Decimal(1)}
    for cube in newest.findall(f"{{{_ECB_NS}}}Cube"):
        code = (cube.get("currency") or "").upper()
        if not _CODE.match(code):
            raise FxError(f"{day}: {cube.get('currency')!r} is not a currency code")
        per_euro[code] = _rate(cube.get("rate") or "", f"{day} {code}")
    platform = platform_currency.upper()
    if platform not in per_euro:
        raise FxError(f"{day}: the file has no rate for the platform currency {platform}")
    if len(per_euro) < 2:
        raise FxError(f"{day}: the file lists no currency")
    base = per_euro[platform]
    rates = {code: (base / rate).quantize(Decimal("0.00000001")) for code, rate in per_euro.items()}
    rates[platform] = Decimal(1)
    return EcbRates(day, rates)
