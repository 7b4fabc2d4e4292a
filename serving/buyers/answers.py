"""Judging one buyer's answer: its HTTP status and body decoded, the whole answer refused when
it names another auction or currency, and each of its bids checked against the request
(`serving.buyers.bids`). Plain values, no I/O."""

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from serving.buyers.bids import (
    LOSS_CODES,
    WRONG_CURRENCY,
    WRONG_ID,
    Blocks,
    ExternalBid,
    LostBid,
    bid_problem,
    external_bid,
    loss_code,
)
from serving.buyers.outcomes import BID, INVALID_JSON, NO_BID
from serving.openrtb import BidResponse, OpenRtbError, decode_bid_response
from serving.snapshot import BuyerSnap


@dataclass(slots=True)
class Answer:
    """The verdict on one call: its outcome and, when it answered, its valid bids."""

    reason: str
    status: int | None = None
    latency_ms: float | None = None
    bids: list[ExternalBid] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    nbr: int | None = None
    lost: list[LostBid] = field(default_factory=list)


def judge_answer(
    buyer: BuyerSnap,
    status: int,
    payload: bytes,
    request_id: str,
    blocks: Blocks,
    rate: Callable[[str], Decimal | None],
) -> Answer:
    """The verdict on one HTTP answer; `rate` converts a currency into the platform's (None
    when it cannot)."""
    if status == 204:
        return Answer(NO_BID)
    if status != 200:
        return Answer(f"http_{status}")
    if not payload.strip():  # an empty 200 is a no-bid too, if an odd one
        return Answer(NO_BID)
    try:
        response = decode_bid_response(payload)
    except OpenRtbError:
        return Answer(INVALID_JSON)
    if not any(seat.bid for seat in response.seatbid or ()):
        return Answer(NO_BID, nbr=response.nbr)
    if response.id != request_id:
        return _refuse(buyer, response, WRONG_ID)
    cur = (response.cur or "USD").upper()
    fx = rate(cur)
    if cur != buyer.currency.upper() or fx is None:
        return _refuse(buyer, response, WRONG_CURRENCY)
    return _judge_bids(buyer, response, fx, blocks)


def _refuse(buyer: BuyerSnap, response: BidResponse, reason: str) -> Answer:
    """A whole answer dropped: each of its priced bids lost for the answer's reason."""
    answer = Answer(reason)
    cur = (response.cur or "USD").upper()
    for seat in response.seatbid or ():
        for bid in seat.bid:
            if bid.price > 0:
                ext = external_bid(buyer, response, bid, seat.seat, Decimal(1), cur)
                answer.lost.append(LostBid(ext, LOSS_CODES[reason]))
    return answer


def _judge_bids(buyer: BuyerSnap, response: BidResponse, rate: Decimal, blocks: Blocks) -> Answer:
    answer = Answer(BID)
    for seat in response.seatbid or ():
        for bid in seat.bid:
            reason, floor = bid_problem(bid, seat.seat, rate, blocks)
            if not reason:
                answer.bids.append(
                    external_bid(buyer, response, bid, seat.seat, rate, buyer.currency.upper())
                )
                continue
            answer.dropped[reason] += 1
            if reason in LOSS_CODES:
                ext = external_bid(buyer, response, bid, seat.seat, rate, buyer.currency.upper())
                answer.lost.append(LostBid(ext, loss_code(reason, bid, floor), floor))
    if not answer.bids:
        # The most frequent drop names the outcome; ties go to the first seen.
        answer.reason = answer.dropped.most_common(1)[0][0]
    return answer
