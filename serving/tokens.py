"""Signed tracking tokens for impression and click URLs.

A token is `base64url(json payload).base64url(HMAC-SHA256 tag)`. The payload carries what
the event needs (decision, line item, price, time), so recording it needs no lookup, and
the tag makes a forged or altered token detectable.
"""

import base64
import binascii
import hmac
from typing import Literal

import msgspec

# Impression, click, creative error (VAST <Error>, HTML render failure), player event.
TokenKind = Literal["imp", "clk", "err", "evt"]


class TrackingToken(msgspec.Struct, array_like=True, frozen=True):
    kind: TokenKind
    decision_id: str
    placement_id: int
    line_item_id: int
    campaign_id: int
    advertiser_id: int
    creative_id: int
    cpm_micros: int  # clearing CPM in millionths of the campaign currency (0 for CPC)
    issued_at: int  # epoch seconds
    landing_url: str = ""  # where a click goes
    click_micros: int = 0  # clicks of CPC line items: the price of the click
    buyer_id: int = 0  # a win of external demand
    notice: str = ""  # impressions of external demand: the buyer's billing notice (burl)
    # TCF purpose 7 (measure ad performance) for us on this decision: its player and
    # viewability events (/v1/ev/) are recorded only then. Last, so older tokens still decode.
    measure: bool = True
    test: bool = False  # a decision on test traffic (OpenRTB test = 1): never billed
    door: str = ""  # the door of the ad request ("v1", "openrtb", "vast"), for the reports
    # For the invalid-traffic rules (`serving.ivt.judge`): the decision's pseudonymous user
    # id (only where consent allowed ids) and its truncated address (/24, /56).
    u: str = ""
    net: str = ""
    g: str = ""  # the request's country and device type (`serving.events.geo_device`)


class InvalidToken(ValueError):
    """The token is malformed, or its signature does not match."""


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(TrackingToken)


_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")


def b64(data: bytes) -> str:
    # binascii directly: base64.urlsafe_b64encode costs twice as much on the hot path.
    return binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    """The bytes of canonical unpadded base64url, else ValueError.

    Decoding alone is lenient: the last character's unused bits are ignored (16 spellings of
    a 16-byte tag all decode alike), and so are characters outside the alphabet and padding.
    One token must have one spelling (it is a de-duplication and cache key), so the text is
    encoded again and must come back unchanged.
    """
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64(data) != text:
        raise ValueError("not canonical base64url")
    return data


class TokenSigner:
    def __init__(self, key: str) -> None:
        self._key = key.encode()

    def _tag(self, payload: bytes) -> bytes:
        return hmac.digest(self._key, payload, "sha256")[:16]

    def sign(self, token: TrackingToken) -> str:
        payload = _encoder.encode(token)
        return f"{b64(payload)}.{b64(self._tag(payload))}"

    def verify(self, text: str, kind: TokenKind, *also: TokenKind) -> TrackingToken:
        """The token, if its signature matches and it is of `kind` (or one of `also`)."""
        body, sep, tag = text.partition(".")
        if not sep:
            raise InvalidToken("token has no signature")
        try:
            payload, given = unb64(body), unb64(tag)
        except ValueError as exc:
            raise InvalidToken("token is not base64url") from exc
        if not hmac.compare_digest(given, self._tag(payload)):
            raise InvalidToken("token signature does not match")
        try:
            token = _decoder.decode(payload)
        except msgspec.DecodeError as exc:
            raise InvalidToken("token payload is malformed") from exc
        if token.kind != kind and token.kind not in also:
            raise InvalidToken(f"token is for {token.kind}, not {kind}")
        return token
