"""Conversions: the click id a landing page keeps, and the fields a conversion carries.

Plain Python shared by the pixel (`/v1/conv`, `serving.app`) and the signed postback
(`reporting.conversions.views`): both check the same fields the same way and append the same
`conv` event to the stream, which `reporting.conversions.attribution` attributes.

A click id is what the click redirect puts in place of `{CLICK_ID}` in the landing URL:
`base64url(JSON [decision, placement, line item, campaign, advertiser, creative, clicked
at]).base64url(HMAC tag)`, signed with a key derived from SERVING_SIGNING_KEY for this use
only (a click id is never a valid tracking token, nor the reverse). It names a decision, not
a person, and holds everything post-click attribution needs: no store of clicks is kept.
"""

import hmac
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from urllib.parse import quote

import msgspec
import pycountry

from serving.events import Event
from serving.tokens import InvalidToken, b64, unb64

CLICK_ID_MACRO = "{CLICK_ID}"
# Conversions are accepted this long after their time (a postback sent late) and this far
# ahead of our clock (the sender's clock runs fast).
MAX_AGE_SECONDS = 90 * 86400
MAX_AHEAD_SECONDS = 300
MAX_VALUE = Decimal(10) ** 12
VALUE_PLACES = 6
DEFAULT_EVENT = "conversion"
EVENT_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,40}$")
ORDER_RE = re.compile(r"^[^\x00-\x1f\x7f]{1,100}$")
MAX_USER_ID = 200


class ClickId(msgspec.Struct, array_like=True, frozen=True):
    decision_id: str
    placement_id: int
    line_item_id: int
    campaign_id: int
    advertiser_id: int
    creative_id: int
    clicked_at: int  # epoch seconds


_encode = msgspec.json.Encoder().encode
_decode_click = msgspec.json.Decoder(ClickId).decode


class ClickIds:
    """Signs and checks click ids (`{CLICK_ID}` in a landing URL)."""

    def __init__(self, signing_key: str) -> None:
        self._key = hmac.digest(signing_key.encode(), b"click-id", "sha256")

    def _tag(self, payload: bytes) -> bytes:
        return hmac.digest(self._key, payload, "sha256")[:16]

    def sign(self, click: ClickId) -> str:
        payload = _encode(click)
        return f"{b64(payload)}.{b64(self._tag(payload))}"

    def verify(self, text: str) -> ClickId:
        body, sep, tag = text.partition(".")
        if not sep or len(text) > 400:
            raise InvalidToken("the click id is malformed")
        try:
            payload, given = unb64(body), unb64(tag)
        except ValueError as exc:
            raise InvalidToken("the click id is not base64url") from exc
        if not hmac.compare_digest(given, self._tag(payload)):
            raise InvalidToken("the click id's signature does not match")
        try:
            return _decode_click(payload)
        except msgspec.DecodeError as exc:
            raise InvalidToken("the click id is malformed") from exc

    def landing(self, url: str, click: ClickId) -> str:
        """The landing URL with its `{CLICK_ID}` macro filled (unchanged without one)."""
        if CLICK_ID_MACRO not in url:
            return url
        return url.replace(CLICK_ID_MACRO, quote(self.sign(click), safe=""))


class FieldError(ValueError):
    """A conversion field is missing or not valid: `field` names it as the sender spelled it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"`{field}`: {message}")
        self.field, self.message = field, message


@dataclass(frozen=True, slots=True)
class Conversion:
    event: str
    value: str  # a plain decimal ("49.9"), "" when none was sent
    currency: str
    order_id: str
    click: ClickId | None
    user_id: str  # as sent; only its pseudonym is ever stored, and only with consent
    ts_ms: int


# The names of the fields in each door: (pixel query parameter, postback JSON key).
PIXEL = {
    "event": "event", "value": "value", "currency": "cur", "order_id": "order",
    "click_id": "clid", "user_id": "uid", "ts": "ts",
}  # fmt: skip
POSTBACK = {name: name for name in PIXEL}


def _text(raw: object, name: str) -> str:
    if raw is None:
        return ""
    if isinstance(raw, bool) or not isinstance(raw, str | int | float | Decimal):
        raise FieldError(name, "must be a string")
    return str(raw).strip()


def _value(text: str, name: str) -> str:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise FieldError(name, f"{text[:40]!r} is not a number") from None
    if not value.is_finite() or value < 0 or value > MAX_VALUE:
        raise FieldError(name, f"must be a number from 0 to {MAX_VALUE}")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -VALUE_PLACES:
        raise FieldError(name, f"has more than {VALUE_PLACES} decimal places")
    return format(value.normalize(), "f")


def _ts_ms(raw: object, name: str, now: float) -> int:
    if raw is None or raw == "":
        return int(now * 1000)
    if isinstance(raw, int) and not isinstance(raw, bool):
        when = float(raw)
    elif isinstance(raw, str):
        text = raw.strip()
        try:
            when = float(int(text)) if text.isdigit() else datetime.fromisoformat(text).timestamp()
        except ValueError:
            raise FieldError(name, "must be epoch seconds or an ISO 8601 time") from None
        if not text.isdigit() and datetime.fromisoformat(text).tzinfo is None:
            raise FieldError(name, "an ISO 8601 time needs its UTC offset")
    else:
        raise FieldError(name, "must be epoch seconds or an ISO 8601 time")
    if when > now + MAX_AHEAD_SECONDS:
        raise FieldError(name, "is in the future")
    if when < now - MAX_AGE_SECONDS:
        raise FieldError(name, f"is more than {MAX_AGE_SECONDS // 86400} days ago")
    return int(when * 1000)


def parse_conversion(
    get: Callable[[str], object], names: dict[str, str], click_ids: ClickIds, advertiser_id: int,
    now: float | None = None,
) -> Conversion:  # fmt: skip
    """The conversion in `get(<door's name>)`, checked; FieldError names the first bad field."""
    now = time.time() if now is None else now
    event = _text(get(names["event"]), names["event"]) or DEFAULT_EVENT
    if not EVENT_RE.match(event):
        raise FieldError(names["event"], "1-40 letters, digits or _.:- (e.g. purchase)")
    value_text = _text(get(names["value"]), names["value"])
    value = _value(value_text, names["value"]) if value_text else ""
    currency = _text(get(names["currency"]), names["currency"]).upper()
    if currency and (len(currency) != 3 or pycountry.currencies.get(alpha_3=currency) is None):
        raise FieldError(names["currency"], f"{currency[:10]!r} is not an ISO 4217 currency")
    if value and not currency:
        raise FieldError(names["currency"], "is needed with a value")
    order_id = _text(get(names["order_id"]), names["order_id"])
    if order_id and not ORDER_RE.match(order_id):
        raise FieldError(names["order_id"], "at most 100 characters, no control characters")
    click_text = _text(get(names["click_id"]), names["click_id"])
    click = None
    if click_text:
        try:
            click = click_ids.verify(click_text)
        except InvalidToken as exc:
            raise FieldError(names["click_id"], str(exc)) from None
        if click.advertiser_id != advertiser_id:
            raise FieldError(names["click_id"], "is a click on another advertiser's ad")
    user_id = _text(get(names["user_id"]), names["user_id"])
    if len(user_id) > MAX_USER_ID:
        raise FieldError(names["user_id"], f"at most {MAX_USER_ID} characters")
    ts_ms = _ts_ms(get(names["ts"]), names["ts"], now)
    return Conversion(event, value, currency, order_id, click, user_id, ts_ms)


class ConversionDetail(msgspec.Struct, array_like=True, frozen=True):
    """What a `conv` event carries in its `x` field."""

    value: str
    currency: str
    order_id: str
    clicked_at: int  # epoch seconds; 0 without a click id
    source: str  # "pixel" or "postback"


decode_detail = msgspec.json.Decoder(ConversionDetail).decode


def conversion_event(c: Conversion, advertiser_id: int, pseudonym: str, source: str) -> Event:
    """The stream event of a conversion: the click's ids, the pseudonym where consent allowed
    it (the post-view path), the event name in `r` and the rest in `x`."""
    click = c.click
    detail = ConversionDetail(
        c.value, c.currency, c.order_id, click.clicked_at if click else 0, source
    )
    return Event(
        t="conv",
        ts=c.ts_ms,
        pl=click.placement_id if click else 0,
        li=click.line_item_id if click else 0,
        cp=click.campaign_id if click else 0,
        adv=advertiser_id,
        cr=click.creative_id if click else 0,
        d=click.decision_id if click else "",
        u=pseudonym,
        r=c.event,
        x=_encode(detail).decode(),
    )
