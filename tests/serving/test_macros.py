import base64
from decimal import Decimal

import pytest

from serving.macros import b64url, macro_values, substitute

VALUES = {
    "AUCTION_ID": "req-1",
    "AUCTION_BID_ID": "bid-1",
    "AUCTION_IMP_ID": "imp-1",
    "AUCTION_SEAT_ID": "seat-1",
    "AUCTION_AD_ID": "ad-1",
    "AUCTION_PRICE": "0.91",
    "AUCTION_CURRENCY": "USD",
    "AUCTION_MBR": "0.91",
    "AUCTION_LOSS": "102",
    "AUCTION_MIN_TO_WIN": "1.01",
    "AUCTION_IMP_TS": "1700000000000",
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://win.example/?p=${AUCTION_PRICE}", "https://win.example/?p=0.91"),
        (
            "/w?a=${AUCTION_ID}&b=${AUCTION_BID_ID}&i=${AUCTION_IMP_ID}&s=${AUCTION_SEAT_ID}",
            "/w?a=req-1&b=bid-1&i=imp-1&s=seat-1",
        ),
        (
            "ad=${AUCTION_AD_ID}&c=${AUCTION_CURRENCY}&m=${AUCTION_MBR}&l=${AUCTION_LOSS}",
            "ad=ad-1&c=USD&m=0.91&l=102",
        ),
        ("${AUCTION_MIN_TO_WIN}|${AUCTION_IMP_TS}", "1.01|1700000000000"),
        ("${AUCTION_PRICE}${AUCTION_PRICE}", "0.910.91"),
        ("p=${AUCTION_PRICE:B64}", "p=MC45MQ"),
        ("id=${AUCTION_ID:B64}", "id=cmVxLTE"),
        # unknown macros and encodings are left as they are
        ("x=${AUCTION_MULTIPLIER}", "x=${AUCTION_MULTIPLIER}"),
        ("x=${SOMETHING_ELSE}&p=${AUCTION_PRICE}", "x=${SOMETHING_ELSE}&p=0.91"),
        ("x=${AUCTION_PRICE:HEX}", "x=${AUCTION_PRICE:HEX}"),
        ("x=${auction_price}", "x=${auction_price}"),
        ("x=${AUCTION_PRICE", "x=${AUCTION_PRICE"),
        ("x=$AUCTION_PRICE", "x=$AUCTION_PRICE"),
        ("[ERRORCODE] {AUCTION_PRICE}", "[ERRORCODE] {AUCTION_PRICE}"),
        ("", ""),
    ],
)
def test_substitute(text: str, expected: str) -> None:
    assert substitute(text, VALUES) == expected


def test_text_without_macros_is_returned_untouched() -> None:
    text = "<div>" + "x" * 1000 + "</div>"

    assert substitute(text, VALUES) is text


def test_substitution_is_plain_text_in_markup() -> None:
    markup = '<img src="https://t.example/i?p=${AUCTION_PRICE}&id=${AUCTION_ID}">'

    assert substitute(markup, {"AUCTION_PRICE": "1&2", "AUCTION_ID": '"x"'}) == (
        '<img src="https://t.example/i?p=1&2&id="x"">'
    )


@pytest.mark.parametrize("value", ["0.91", "", "ü€ and ??>>", "a" * 50])
def test_b64_is_unpadded_base64url(value: str) -> None:
    encoded = substitute("${AUCTION_PRICE:B64}", {"AUCTION_PRICE": value})

    assert encoded == b64url(value)
    assert "=" not in encoded and "+" not in encoded and "/" not in encoded
    padded = encoded + "=" * (-len(encoded) % 4)
    assert base64.urlsafe_b64decode(padded).decode() == value


def test_macro_values_format_everything() -> None:
    values = macro_values(
        auction_id="req-1",
        bid_id="bid-1",
        imp_id="imp-1",
        seat_id="seat-1",
        ad_id="ad-1",
        price=Decimal("0.91"),
        currency="EUR",
        loss=102,
        min_to_win=Decimal("1E+1"),
        imp_ts=1_700_000_000_123,
        bid_price=Decimal("1.00"),
    )

    assert values == {
        "AUCTION_ID": "req-1",
        "AUCTION_BID_ID": "bid-1",
        "AUCTION_IMP_ID": "imp-1",
        "AUCTION_SEAT_ID": "seat-1",
        "AUCTION_AD_ID": "ad-1",
        "AUCTION_PRICE": "0.91",
        "AUCTION_CURRENCY": "EUR",
        "AUCTION_MBR": "0.91",
        "AUCTION_LOSS": "102",
        "AUCTION_MIN_TO_WIN": "10",
        "AUCTION_IMP_TS": "1700000000123",
        "AUCTION_MULTIPLIER": "",
        "AUCTION_DISCOUNT_PCT": "",
        "AUCTION_DISCOUNT_CPM": "",
    }


@pytest.mark.parametrize(
    ("price", "text"),
    [
        (Decimal("1.2345"), "1.2345"),
        (Decimal("2.50"), "2.50"),
        (Decimal("1E+2"), "100"),
        (Decimal("1E-7"), "0.0000001"),
        (Decimal(0), "0"),
        (None, ""),
    ],
)
def test_prices_are_plain_decimals(price: Decimal | None, text: str) -> None:
    values = macro_values(
        auction_id="r",
        bid_id=None,
        imp_id=None,
        seat_id=None,
        ad_id=None,
        price=price,
        currency="USD",
    )

    assert values["AUCTION_PRICE"] == text


@pytest.mark.parametrize(
    ("price", "bid_price", "mbr"),
    [
        (Decimal("0.91"), Decimal("1.00"), "0.91"),
        (Decimal("1"), Decimal("3"), "0.3333"),
        (Decimal("2"), Decimal("2"), "1"),
        (Decimal("1"), None, ""),
        (Decimal("1"), Decimal(0), ""),
        (None, Decimal("1"), ""),
    ],
)
def test_market_bid_ratio(price: Decimal | None, bid_price: Decimal | None, mbr: str) -> None:
    values = macro_values(
        auction_id="r",
        bid_id=None,
        imp_id=None,
        seat_id=None,
        ad_id=None,
        price=price,
        currency="USD",
        bid_price=bid_price,
    )

    assert values["AUCTION_MBR"] == mbr


def test_unknown_values_become_empty_strings() -> None:
    values = macro_values(
        auction_id="r",
        bid_id=None,
        imp_id="1",
        seat_id=None,
        ad_id=None,
        price=None,
        currency=None,
    )
    url = "https://l.example/?a=${AUCTION_ID}&l=${AUCTION_LOSS}&m=${AUCTION_MIN_TO_WIN}&x=${OTHER}"

    assert substitute(url, values) == "https://l.example/?a=r&l=&m=&x=${OTHER}"
