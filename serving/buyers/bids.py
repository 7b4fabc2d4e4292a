"""A buyer's bid as the auction sees it once accepted (`ExternalBid`), and the checks each bid
passes against the request first (`bid_problem`): the imp it names, its price and markup,
the request's blocks, deal rules, video durations and floors. Plain values, no I/O; the
buyer pool judges every answer with them (`serving.buyers.answers`)."""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from serving.blocks import adomain_blocked, domain_keys, normalise_badv
from serving.context import VIDEO, AdContext, DealRequest, Imp
from serving.macros import macro_values
from serving.openrtb import (
    LOSS_ADVERTISER_EXCLUSION,
    LOSS_BELOW_DEAL_FLOOR,
    LOSS_BELOW_FLOOR,
    LOSS_CATEGORY_EXCLUSION,
    LOSS_EXPIRED,
    LOSS_INVALID_AUCTION_ID,
    LOSS_INVALID_DEAL,
    LOSS_INVALID_RESPONSE,
    LOSS_MISSING_MARKUP,
    LOSS_NOT_IN_DEAL,
    MTYPE_VIDEO,
    Bid,
    BidResponse,
)
from serving.snapshot import BuyerSnap

MICROS = Decimal("0.000001")

# Outcome reasons of a whole answer that its priced bids are lost for:
TIMEOUT = "timeout"
WRONG_ID = "wrong_id"
WRONG_CURRENCY = "wrong_currency"
# One bid:
UNKNOWN_IMP = "unknown_imp"
BAD_PRICE = "bad_price"
NO_MARKUP = "no_markup"
BLOCKED_DOMAIN = "blocked_domain"
BLOCKED_CATEGORY = "blocked_category"
INVALID_DEAL = "invalid_deal"
BELOW_FLOOR = "below_floor"
DURATION = "duration"  # a video bid's `dur` not allowed (rqddurs, min/max), or missing

# The OpenRTB loss reason (`${AUCTION_LOSS}`) a bid dropped for each reason is notified
# with. A bid without a positive price is not a priced bid: it gets no loss notice.
LOSS_CODES = {
    UNKNOWN_IMP: LOSS_INVALID_RESPONSE,
    NO_MARKUP: LOSS_MISSING_MARKUP,
    DURATION: LOSS_INVALID_RESPONSE,  # as the pod auction says of a bid without `dur`
    BLOCKED_DOMAIN: LOSS_ADVERTISER_EXCLUSION,
    BLOCKED_CATEGORY: LOSS_CATEGORY_EXCLUSION,
    INVALID_DEAL: LOSS_INVALID_DEAL,
    BELOW_FLOOR: LOSS_BELOW_FLOOR,
    WRONG_ID: LOSS_INVALID_AUCTION_ID,
    WRONG_CURRENCY: LOSS_INVALID_RESPONSE,
    TIMEOUT: LOSS_EXPIRED,
}

VIDEO_ONLY = frozenset({VIDEO})


@dataclass(frozen=True, slots=True)
class ExternalBid:
    """A buyer's bid that passed every check and may compete in the auction."""

    buyer_id: int
    buyer_name: str
    imp_id: str
    price: Decimal  # CPM in the platform currency
    original_price: Decimal  # CPM as bid, in the buyer's currency
    adm: str | None
    adomain: tuple[str, ...]
    crid: str | None
    cid: str | None
    cat: tuple[str, ...]
    w: int | None
    h: int | None
    mtype: int | None
    dealid: str | None
    nurl: str | None
    burl: str | None
    lurl: str | None
    bid_id: str
    seat: str | None
    currency: str = "USD"  # the buyer's, which `original_price` is in
    fx_rate: Decimal = Decimal(1)  # platform units per unit of `currency`
    dur: int | None = None  # seconds, video and audio (ad pods place by it)
    protocol: int | None = None  # AdCOM creative subtype, as the buyer gave it
    # BidResponse.bidid, the buyer's id of its whole answer: `${AUCTION_BID_ID}` (§4.4).
    response_id: str = ""
    adid: str | None = None

    def in_buyer_currency(self, platform_amount: Decimal) -> Decimal:
        """A platform-currency amount (the clearing price) as the buyer's `${AUCTION_PRICE}`."""
        if self.fx_rate == 1:
            return platform_amount
        return (platform_amount / self.fx_rate).quantize(MICROS)

    def macros(
        self,
        *,
        auction_id: str,
        imp_ts: int,
        price: Decimal | None = None,
        loss: int | None = None,
        min_to_win: Decimal | None = None,
    ) -> dict[str, str]:
        """The OpenRTB macro values for this bid's notices and markup; `price` (the clearing
        price) and `min_to_win` are in the platform currency and written in the buyer's."""
        return macro_values(
            auction_id=auction_id,
            bid_id=self.response_id or None,
            imp_id=self.imp_id,
            seat_id=self.seat,
            ad_id=self.adid,
            price=self.in_buyer_currency(price) if price is not None else None,
            currency=self.currency,
            loss=loss,
            min_to_win=self.in_buyer_currency(min_to_win) if min_to_win is not None else None,
            imp_ts=imp_ts,
            bid_price=self.original_price,
        )


@dataclass(frozen=True, slots=True)
class LostBid:
    """A priced bid that will not win: its loss reason and, where known, what would have
    won (platform currency): the floor it missed, or the price it had to beat."""

    bid: ExternalBid
    loss: int
    min_to_win: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Blocks:
    """The request's blocks and imps, normalised once per round for the bid checks."""

    imps: Mapping[str, Imp]
    badv: frozenset[str]
    bcat: frozenset[str]

    @classmethod
    def of(cls, ctx: AdContext, imps: Sequence[Imp]) -> "Blocks":
        return cls(
            imps={imp.id: imp for imp in imps},
            badv=normalise_badv(ctx.badv),
            bcat=frozenset(c.strip().upper() for c in ctx.bcat),
        )

    def blocks_domain(self, adomain: Iterable[str]) -> bool:
        """`serving.blocks`: subdomains blocked too, no `adomain` cannot be checked."""
        return adomain_blocked(domain_keys(adomain), self.badv)

    def blocks_category(self, cats: Iterable[str]) -> bool:
        """A tier-1 block (`IAB7`) also blocks its tier-2 children (`IAB7-39`)."""
        for cat in cats:
            code = cat.strip().upper()
            if code in self.bcat or code.split("-", 1)[0] in self.bcat:
                return True
        return False


def deal_problem(bid: Bid, seat: str | None, imp: Imp) -> tuple[str, DealRequest | None]:
    """Whether a bid may use the deal it names (or go without one); returns the deal."""
    if not bid.dealid:
        return (INVALID_DEAL if imp.private_auction else ""), None
    deal = next((d for d in imp.deals if d.id == bid.dealid), None)
    if deal is None:
        return INVALID_DEAL, None
    if deal.wseat and seat not in deal.wseat:
        return INVALID_DEAL, deal
    if deal.wadomain and not set(bid.adomain or ()) & set(deal.wadomain):
        return INVALID_DEAL, deal
    return "", deal


def bid_problem(
    bid: Bid, seat: str | None, rate: Decimal, blocks: Blocks
) -> tuple[str, Decimal | None]:
    """Why a bid may not compete ("" when it may), and for one below its floor that floor
    (platform currency). Checks run cheapest and surest first."""
    imp = blocks.imps.get(bid.impid)
    if imp is None:
        return UNKNOWN_IMP, None
    if not bid.price.is_finite() or bid.price <= 0:
        return BAD_PRICE, None
    if not bid.adm and not bid.nurl:
        return NO_MARKUP, None
    if blocks.badv and blocks.blocks_domain(bid.adomain or ()):
        return BLOCKED_DOMAIN, None
    if blocks.bcat and blocks.blocks_category(bid.cat or ()):
        return BLOCKED_CATEGORY, None
    problem, deal = deal_problem(bid, seat, imp)
    if problem:
        return problem, None
    # The deal's floor takes precedence over the imp's (OpenRTB 2.6), even when lower; a
    # video's per-second floor over the imp's, for the duration bid.
    floor = deal.bidfloor if deal is not None else imp.bidfloor
    spec = imp.video
    video_bid = bid.mtype == MTYPE_VIDEO or (bid.mtype is None and imp.formats == VIDEO_ONLY)
    if spec is not None and not imp.is_pod and video_bid:
        if bid.dur is None:
            # Without `dur` neither rule can be checked; min/maxduration alone are trusted.
            if spec.rqddurs or spec.mincpmpersec:
                return DURATION, None
        elif not spec.allows_duration(bid.dur):
            return DURATION, None
        elif deal is None:
            floor = spec.floor_for(bid.dur, floor)
    if bid.price * rate < floor:
        return BELOW_FLOOR, floor
    return "", None


def loss_code(reason: str, bid: Bid, floor: Decimal | None) -> int:
    if reason == BELOW_FLOOR and bid.dealid:
        return LOSS_BELOW_DEAL_FLOOR
    if reason == INVALID_DEAL and not bid.dealid:
        return LOSS_NOT_IN_DEAL  # a private auction, and the bid names no deal
    return LOSS_CODES[reason]


def external_bid(
    buyer: BuyerSnap,
    response: BidResponse,
    bid: Bid,
    seat: str | None,
    rate: Decimal,
    currency: str,
) -> ExternalBid:
    """The bid as the auction and the notices see it, `currency` being the one it is in (the
    answer's own for an answer refused whole, whose rate is then taken as 1: unknown)."""
    return ExternalBid(
        buyer_id=buyer.id,
        buyer_name=buyer.name,
        imp_id=bid.impid,
        price=(bid.price * rate).quantize(MICROS) if rate != 1 else bid.price,
        original_price=bid.price,
        adm=bid.adm or None,
        adomain=tuple(bid.adomain or ()),
        crid=bid.crid,
        cid=bid.cid,
        cat=tuple(bid.cat or ()),
        w=bid.w,
        h=bid.h,
        mtype=bid.mtype,
        dealid=bid.dealid or None,
        nurl=bid.nurl or None,
        burl=bid.burl or None,
        lurl=bid.lurl or None,
        bid_id=bid.id,
        seat=seat or None,
        currency=currency,
        fx_rate=rate,
        dur=bid.dur,
        protocol=bid.protocol,
        response_id=response.bidid or "",
        adid=bid.adid,
    )
