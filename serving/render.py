"""Rendering decisions: signed tracking URLs filled into the creative's markup, external
demand's markup with the OpenRTB macros substituted, and each door's answer for a decision."""

import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from creatives import placeholders as ph
from serving import openrtb
from serving.buyers.bids import ExternalBid
from serving.buyers.requests import auction_id_of
from serving.context import AdContext
from serving.engine import Decision, Outcome
from serving.events import geo_device
from serving.macros import macro_values, substitute
from serving.openrtb.response import SEAT
from serving.snapshot import LineItemSnap, PlacementSnap
from serving.tokens import TokenSigner, TrackingToken

MICROS = Decimal(1_000_000)
PRICE_PLACES = Decimal("0.0001")
# AdCOM creative subtypes (Bid.protocol): VAST 4.2, and a VAST 4.2 wrapper.
VAST_42, VAST_42_WRAPPER = 13, 14
MTYPES = {"banner": 1, "video": 2, "audio": 3, "native": 4}


@dataclass(slots=True)
class Served:
    """One decision, rendered."""

    decision: Decision
    decision_id: str
    format: str
    markup: str
    imp_url: str
    click_url: str
    native: str = ""


class Renderer:
    def __init__(self, signer: TokenSigner, public_url: str, currency: str = "USD") -> None:
        self.signer, self.public_url, self.currency = signer, public_url, currency

    def render_all(
        self,
        ctx: AdContext,
        placement: PlacementSnap,
        outcome: Outcome,
        currency: str | None = None,
        rate: Decimal = Decimal(1),
    ) -> list[Served]:
        """Each decision rendered; `currency` (one unit worth `rate` platform units) is the
        answer's, for `${AUCTION_PRICE}` in our own markup (the platform's by default)."""
        now = int(ctx.now)
        # The request's country and device type, as every decision's token carries them.
        g = geo_device(ctx.geo.country, ctx.device.devicetype)
        answer = _Answer(currency or self.currency, rate, g)
        return [
            self._render(ctx, d, placement, f"{ctx.request_id}-{n}", now, answer)
            for n, d in enumerate(outcome.decisions)
        ]

    def _render(
        self,
        ctx: AdContext,
        d: Decision,
        placement: PlacementSnap,
        decision_id: str,
        now: int,
        answer: "_Answer",
    ) -> Served:
        if d.line_item is None:
            return self._render_external(ctx, d, placement, decision_id, now, answer.g)
        li, creative = d.line_item, d.creative
        assert creative is not None  # noqa: S101 - set with line_item
        cpm_micros, click_micros = costs(li, d.price, d.pctr)
        token = TrackingToken(
            kind="imp",
            decision_id=decision_id,
            placement_id=placement.id,
            line_item_id=li.id,
            campaign_id=li.campaign_id,
            advertiser_id=li.advertiser_id,
            creative_id=creative.id,
            cpm_micros=cpm_micros,
            issued_at=now,
            landing_url=creative.click_url,
            click_micros=click_micros,
            measure=ctx.permissions is not None and ctx.permissions.measure,
            test=ctx.test,
            door=ctx.source,
            u=ctx.pseudonym,
            net=ctx.network,
            g=answer.g,
        )
        # One signed token per decision, for its impression, click, error and event URLs
        # alike (the path says which): one HMAC per decision on the hot path.
        signed = self.signer.sign(token)
        base = self.public_url
        imp_url = f"{base}/v1/imp/{signed}"
        click_url = f"{base}/v1/click/{signed}"
        markup = fill(creative.markup, imp_url, click_url, decision_id)
        native = fill(creative.native, imp_url, click_url, decision_id)
        # Third-party tags (HTML5 tags, VAST wrappers) may carry OpenRTB macros; a plain
        # substring test keeps the common creative free of any further work.
        if "${" in markup or "${" in native:
            values = own_macros(ctx, d, creative.id, answer)
            markup, native = substitute(markup, values), substitute(native, values)
        return Served(d, decision_id, creative.format, markup, imp_url, click_url, native)

    def _render_external(
        self,
        ctx: AdContext,
        d: Decision,
        placement: PlacementSnap,
        decision_id: str,
        now: int,
        g: str,
    ) -> Served:
        ext: ExternalBid = d.external
        values = auction_macros(ctx, ext, d.price, None)
        token = TrackingToken(
            kind="imp",
            decision_id=decision_id,
            placement_id=placement.id,
            line_item_id=0,
            campaign_id=0,
            advertiser_id=0,
            creative_id=0,
            cpm_micros=int(d.price * MICROS),
            issued_at=now,
            buyer_id=ext.buyer_id,
            # Test traffic is never billable: the buyer gets no billing notice for it.
            notice=substitute(ext.burl, values) if ext.burl and not ctx.test else "",
            test=ctx.test,
            door=ctx.source,
            u=ctx.pseudonym,
            net=ctx.network,
            g=g,
        )
        imp_url = f"{self.public_url}/v1/imp/{self.signer.sign(token)}"
        markup = substitute(ext.adm or "", values)
        fmt = {1: "banner", 2: "video", 3: "audio", 4: "native"}.get(ext.mtype or 1, "banner")
        return Served(d, decision_id, fmt, markup, imp_url, "")

    def openrtb_bid(self, s: Served, rate: Decimal) -> openrtb.ResponseBid:
        d = s.decision
        w, h = wh(d.size)
        crid: str | None
        cid: str | None
        mtype: int | None
        dur: int | None = None
        protocol: int | None = None
        if d.line_item is not None and d.creative is not None:
            adomain, cat = tuple(d.creative.adomain), tuple(d.creative.categories)
            crid, cid = str(d.creative.id), str(d.line_item.campaign_id)
            adm, mtype = s.native or s.markup, MTYPES.get(s.format, 1)
            if s.format in ("video", "audio"):
                # Our video and audio markup is VAST 4.2: an InLine ad, or a Wrapper.
                dur = d.creative.duration or None
                protocol = VAST_42_WRAPPER if "<Wrapper" in s.markup else VAST_42
        else:
            ext: ExternalBid = d.external
            adomain, cat, crid, cid = ext.adomain, ext.cat, ext.crid, ext.cid
            adm, mtype = s.markup, ext.mtype
            dur, protocol = ext.dur, ext.protocol
        return openrtb.ResponseBid(
            id=s.decision_id, impid=d.imp.id, price=answer_price(d.price, rate),
            adm=adm, adomain=adomain, crid=crid, cid=cid, cat=cat, w=w, h=h, mtype=mtype,
            dealid=d.deal_id, burl=s.imp_url, dur=dur, protocol=protocol,
        )  # fmt: skip


def costs(li: LineItemSnap, price: Decimal, pctr: float | None = None) -> tuple[int, int]:
    """(CPM charged per impression, price of a click), micros of the campaign currency; a
    CPC click costs the clearing CPM over the pCTR it was priced with (the model's, else
    the prior)."""
    if li.bid_type == "cpc":
        ctr_value = pctr or li.predicted_ctr
        ctr = Decimal(repr(ctr_value)) if ctr_value else Decimal("0.001")
        per_click = min(li.bid, price / (ctr * 1000))
        return 0, int(per_click / li.fx_rate * MICROS)
    return int(price / li.fx_rate * MICROS), 0


def fill(template: str, imp_url: str, click_url: str, decision_id: str) -> str:
    if not template:
        return ""
    out = template.replace("%%CLICK_URL%%", click_url).replace("%%IMP_URL%%", imp_url)
    # Error and player-event URLs reuse the impression's signed token (they record, never
    # bill): one HMAC fewer per placeholder on the hot path.
    if "%%ERROR_URL%%" in out:
        out = out.replace("%%ERROR_URL%%", imp_url.replace("/v1/imp/", "/v1/err/", 1))
    if "%%EVENT_URL%%" in out:
        out = out.replace("%%EVENT_URL%%", imp_url.replace("/v1/imp/", "/v1/ev/", 1))
    if "%%" in out:
        out = out.replace(ph.VIEWABILITY, ph.VIEWABILITY_ATTR)
        out = out.replace("%%AD_SERVING_ID%%", decision_id).replace(
            "%%CACHEBUSTER%%",
            str(random.randrange(10**8, 10**9)),  # noqa: S311 - not a secret
        )
    return out


@dataclass(frozen=True, slots=True)
class _Answer:
    """The currency a door answers in, how many platform units one unit of it is worth, and
    the request's `geo_device` code (the same for each of its decisions)."""

    currency: str
    rate: Decimal
    g: str = ""


def answer_price(price: Decimal, rate: Decimal) -> Decimal:
    """A platform-currency CPM as written in an answer: in its currency, four decimals."""
    return (price / rate).quantize(PRICE_PLACES)


def own_macros(ctx: AdContext, d: Decision, creative_id: int, answer: _Answer) -> dict[str, str]:
    """The OpenRTB macros in our own line items' markup: our bid as the answer states it
    (`${AUCTION_BID_ID}` is our BidResponse.bidid, the request id; `${AUCTION_AD_ID}` the
    creative; `${AUCTION_PRICE}` our clearing price in the answer's currency)."""
    return macro_values(
        auction_id=auction_id_of(ctx),
        bid_id=ctx.request_id,
        imp_id=d.imp.id,
        seat_id=SEAT if ctx.source == "openrtb" else None,
        ad_id=str(creative_id),
        price=answer_price(d.price, answer.rate),
        currency=answer.currency,
        imp_ts=int(ctx.now * 1000),
    )


def auction_macros(
    ctx: AdContext, ext: ExternalBid, price: Decimal | None, loss: int | None
) -> dict[str, str]:
    return ext.macros(
        auction_id=auction_id_of(ctx), imp_ts=int(ctx.now * 1000), price=price, loss=loss
    )


def v1_decision(s: Served) -> dict[str, Any]:
    d = s.decision
    out: dict[str, Any] = {
        "slot": d.imp.id,
        "id": s.decision_id,
        "format": s.format,
        "size": d.size,
        "markup": s.markup,
        "impression_url": s.imp_url,
    }
    if d.line_item is not None and d.creative is not None:
        out["line_item"] = d.line_item.id
        out["creative"] = d.creative.id
        out["click_url"] = s.click_url
    else:
        out["buyer"] = d.external.buyer_id
    if s.native:
        out["native"] = s.native
    if d.deal_id:
        out["deal"] = d.deal_id
    return out


def wh(size: str) -> tuple[int | None, int | None]:
    w, _, h = size.partition("x")
    return (int(w), int(h)) if w.isdigit() and h.isdigit() and w != "0" else (None, None)
