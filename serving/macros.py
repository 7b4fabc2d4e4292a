"""OpenRTB auction macros (`${AUCTION_PRICE}` and friends) in notice URLs and markup.

Every win, billing and loss notice and most rendered markup passes through `substitute` on
the serving path, so it is one pass of a precompiled pattern, and text without "${" is
returned untouched without running the pattern at all.

Substitution is plain text, as OpenRTB 2.6 §4.4 says: values are not escaped for the URL or
markup they land in. A macro whose name is not in `values` is left as it is, so that a later
stage (or a buyer's own server) can still fill it. `macro_values` applies the spec's rule that
a value we do not have becomes the empty string.

`${NAME:B64}` asks for the value in base64. The spec leaves the algorithm to the parties;
we use base64url (RFC 4648 §5) without padding, which needs no escaping in a URL.
"""

import base64
import re
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal

_MACRO = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(:B64)?\}")
_RATIO_PLACES = Decimal("0.0001")


def substitute(text: str, values: Mapping[str, str]) -> str:
    """`text` with every `${NAME}` / `${NAME:B64}` whose NAME is a key of `values` replaced."""
    if "${" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        if value is None:
            return match.group(0)
        return b64url(value) if match.group(2) else value

    return _MACRO.sub(replace, text)


def b64url(value: str) -> str:
    """Base64url of the UTF-8 bytes, without "=" padding."""
    return base64.urlsafe_b64encode(value.encode()).rstrip(b"=").decode("ascii")


def macro_values(
    *,
    auction_id: str | None,
    bid_id: str | None,
    imp_id: str | None,
    seat_id: str | None,
    ad_id: str | None,
    price: Decimal | None,
    currency: str | None,
    loss: int | None = None,
    min_to_win: Decimal | None = None,
    imp_ts: int | None = None,
    bid_price: Decimal | None = None,
) -> dict[str, str]:
    """The values of every OpenRTB 2.6 auction macro; what is unknown is "" (spec §4.4).

    `price` is the clearing price and `bid_price` the bid it cleared, both in the bid's
    currency; `${AUCTION_MBR}` is their ratio. `imp_ts` is milliseconds since the epoch.
    """
    return {
        "AUCTION_ID": auction_id or "",
        "AUCTION_BID_ID": bid_id or "",
        "AUCTION_IMP_ID": imp_id or "",
        "AUCTION_SEAT_ID": seat_id or "",
        "AUCTION_AD_ID": ad_id or "",
        "AUCTION_PRICE": _plain(price),
        "AUCTION_CURRENCY": currency or "",
        "AUCTION_MBR": _ratio(price, bid_price),
        "AUCTION_LOSS": "" if loss is None else str(loss),
        "AUCTION_MIN_TO_WIN": _plain(min_to_win),
        "AUCTION_IMP_TS": "" if imp_ts is None else str(imp_ts),
        # We sell single impressions at no discount; these exist for DOOH and discounts.
        "AUCTION_MULTIPLIER": "",
        "AUCTION_DISCOUNT_PCT": "",
        "AUCTION_DISCOUNT_CPM": "",
    }


def _plain(value: Decimal | None) -> str:
    # format "f" never uses an exponent: Decimal("1E+1") → "10", Decimal("1E-7") → "0.0000001".
    return "" if value is None else format(value, "f")


def _ratio(price: Decimal | None, bid_price: Decimal | None) -> str:
    if price is None or not bid_price:
        return ""
    ratio = (price / bid_price).quantize(_RATIO_PLACES, rounding=ROUND_HALF_UP)
    return _plain(ratio.normalize())
