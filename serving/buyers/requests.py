"""The bid request one buyer gets: whether the consent policy and COPPA let it be called at all
and with what data, the auction id it is asked about, and the imps with their floors in the
one currency it bids in. Plain values, no I/O."""

from collections.abc import Callable, Sequence
from dataclasses import replace
from decimal import ROUND_CEILING, Decimal

from compliance.policy import BuyerPermission
from serving.buyers.bids import MICROS
from serving.buyers.outcomes import CONSENT, COPPA
from serving.context import AdContext, Imp, VideoSpec
from serving.openrtb import build_outbound_request
from serving.snapshot import BuyerSnap


def auction_id_of(ctx: AdContext) -> str:
    """`${AUCTION_ID}` in every markup and notice, and the id of the BidRequest each buyer
    gets: the publisher's BidRequest.id on the OpenRTB door (what the exchange knows the
    auction by; Prebid Server forwards it the same way), our request id on the others."""
    return ctx.auction_id or ctx.request_id


def permission_for(ctx: AdContext, buyer: BuyerSnap) -> tuple[BuyerPermission | None, str, str]:
    """What the buyer may be sent, with its own GVL vendor id; or None, the reason it may not
    be called and a detail."""
    if ctx.permissions is None:
        return None, CONSENT, "no_permissions"
    permission = ctx.permissions.for_buyer(buyer.gvl_vendor_id, buyer.gvl)
    if not permission.call:
        return None, CONSENT, permission.reason
    if ctx.privacy.coppa == 1 and not buyer.supports_coppa:
        return None, COPPA, ""
    return permission, "", ""


def build_request(
    ctx: AdContext,
    buyer: BuyerSnap,
    imps: Sequence[Imp],
    permission: BuyerPermission,
    timeout: float,
) -> bytes:
    """The BidRequest body, with `imps` already priced in the buyer's currency."""
    return build_outbound_request(
        ctx,
        imps=imps,
        permission=permission,
        tmax_ms=max(1, int(timeout * 1000)),
        currency=buyer.currency.upper(),
        request_id=auction_id_of(ctx),
        buyer_uid=ctx.buyer_uids.get(buyer.id),
    )


def imps_in(imps: Sequence[Imp], rate: Decimal | None) -> Sequence[Imp]:
    """The imps with their floors in the currency one unit of which is worth `rate` platform
    units, so that the request's `cur` and every `bidfloorcur` name the one currency the
    buyer bids in. Rounded up: a bid at the converted floor is worth at least the floor in
    the platform currency."""
    if rate is None or rate == 1:
        return imps

    def convert(amount: Decimal) -> Decimal:
        return (amount / rate).quantize(MICROS, rounding=ROUND_CEILING) if amount else amount

    return [
        replace(
            imp,
            bidfloor=convert(imp.bidfloor),
            deals=tuple(replace(d, bidfloor=convert(d.bidfloor)) for d in imp.deals),
            video=_per_second_in(imp.video, convert),
        )
        for imp in imps
    ]


def _per_second_in(
    spec: VideoSpec | None, convert: Callable[[Decimal], Decimal]
) -> VideoSpec | None:
    """The video's `mincpmpersec` in the buyer's currency, like the floors."""
    if spec is None or not spec.mincpmpersec:
        return spec
    return replace(spec, mincpmpersec=convert(spec.mincpmpersec))
