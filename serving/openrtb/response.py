"""Our BidResponse to an exchange."""

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from serving.openrtb.schema import _compact, _encoder, _money


@dataclass(frozen=True, slots=True)
class ResponseBid:
    """One bid in our answer to an exchange."""

    id: str
    impid: str
    price: Decimal
    adm: str | None = None
    adomain: tuple[str, ...] = ()
    crid: str | None = None
    cid: str | None = None
    cat: tuple[str, ...] = ()
    w: int | None = None
    h: int | None = None
    mtype: int | None = None  # MTYPE_BANNER .. MTYPE_NATIVE
    dealid: str | None = None
    nurl: str | None = None
    burl: str | None = None
    lurl: str | None = None
    dur: int | None = None  # seconds, video and audio
    protocol: int | None = None  # AdCOM: VAST 4.2 = 13, VAST 4.2 wrapper = 14
    slotinpod: int | None = None  # a structured pod's slot the bid is for


SEAT = "adsplatform"


def encode_bid_response(
    *,
    request_id: str,
    bids: Sequence[ResponseBid],
    currency: str,
    seat: str = SEAT,
    bidid: str | None = None,
) -> bytes:
    """Our BidResponse JSON: one seatbid, prices as plain JSON numbers, None fields left out.
    `bidid` is our id of the answer (`${AUCTION_BID_ID}` in our markup)."""
    seatbid = [{"seat": seat, "bid": [_response_bid(bid) for bid in bids]}] if bids else []
    body: dict[str, Any] = {"id": request_id, "seatbid": seatbid, "cur": currency}
    if bidid:
        body["bidid"] = bidid
    return _encoder.encode(body)


def _response_bid(bid: ResponseBid) -> dict[str, Any]:
    return _compact(
        {
            "id": bid.id,
            "impid": bid.impid,
            "price": _money(bid.price),
            "adm": bid.adm,
            "adomain": list(bid.adomain),
            "crid": bid.crid,
            "cid": bid.cid,
            "cat": list(bid.cat),
            "w": bid.w,
            "h": bid.h,
            "mtype": bid.mtype,
            "dealid": bid.dealid,
            "nurl": bid.nurl,
            "burl": bid.burl,
            "lurl": bid.lurl,
            "dur": bid.dur,
            "protocol": bid.protocol,
            "slotinpod": bid.slotinpod,
        }
    )
