"""What an ad request leaves behind, in the sink's next batch (step 7 of the request path).

One stream entry per slot ("req"), then the losses and the external bids; the frequency
counters of the winners; the win and loss notices to external buyers. Nothing here is
waited on.
"""

from collections.abc import Mapping

import msgspec

from compliance.anonymise import truncate_ip
from serving.buyers.bids import ExternalBid
from serving.buyers.pool import BuyerPool
from serving.context import AdContext
from serving.engine import Decision, Outcome
from serving.events import Event, EventSink, geo_device
from serving.keys import RedisKeys
from serving.render import MICROS, auction_macros
from serving.snapshot import LineItemSnap, PlacementSnap
from serving.targeting import cap_fields
from serving.telemetry import slot_features

# Frequency counters of a pseudonymous id outlive no pseudonym period by more than this.
CAP_TTL_SECONDS = 31 * 86400


class RequestRecorder:
    """Writes each ad request's events, counters and buyer notices into the sink's batches."""

    def __init__(
        self, sink: EventSink, keys: RedisKeys, pool: BuyerPool, telemetry_candidates: int
    ) -> None:
        self.sink, self.keys, self.pool = sink, keys, pool
        # Candidates recorded per filled slot for the telemetry files (0: no features).
        self.telemetry_candidates = telemetry_candidates

    def record(
        self,
        placement: PlacementSnap,
        ctx: AdContext,
        outcome: Outcome,
        user: str,
        external: list[ExternalBid],
        line_items: Mapping[int, LineItemSnap],
    ) -> None:
        """One stream entry per request: a "req" per slot, then losses and bids; plus the
        frequency counters of the winners. Nothing here is waited on."""
        ts = int(ctx.now * 1000)
        pl, rid = placement.id, ctx.request_id
        # A filled slot's "req" carries its decision's id (the one its tracking URLs sign,
        # `serving.render`), the join key of its impressions and clicks in the telemetry.
        won = {d.imp.id: (n, d) for n, d in enumerate(outcome.decisions)}
        events: list[Event] = []
        # The request's country and device type: the same for every slot.
        g = geo_device(ctx.geo.country, ctx.device.devicetype)
        for imp in ctx.imps:
            n, d = won.get(imp.id, (0, None))
            events.append(
                req_event(d, ts, pl, f"{rid}-{n}", ctx, g, self.telemetry_candidates)
                if d is not None
                else Event(t="req", ts=ts, pl=pl, d=rid, dr=ctx.source, g=g)
            )
        if len(won) < len(outcome.decisions):
            # An ad pod: its ads after the first on one imp, one "req" each like a single ad.
            for n, d in enumerate(outcome.decisions):
                if won[d.imp.id][1] is not d:
                    events.append(
                        req_event(d, ts, pl, f"{rid}-{n}", ctx, g, self.telemetry_candidates)
                    )
        permissions = ctx.permissions
        events[0] = msgspec.structs.replace(
            events[0],
            cs=permissions.ledger_text() if permissions else "",
            u=user,
            ip=truncate_ip(ctx.device.ip or ctx.device.ipv6) or "",
            rq=ctx.correlation_id,
        )
        losses = list(outcome.rejected)
        for d in outcome.decisions:
            for bid, code in d.losses:
                if bid.key.startswith("li:"):
                    reason = "below_floor" if code in (100, 101) else "outbid"
                    losses.append((int(bid.key[3:]), reason))
        for li_id, reason in losses:
            item = line_items.get(li_id)
            if item is not None:
                events.append(
                    Event(
                        t="loss", ts=ts, pl=pl, li=li_id, cp=item.campaign_id,
                        adv=item.advertiser_id, d=rid, r=reason,
                    )
                )  # fmt: skip
        for ext in external:
            events.append(
                Event(t="bid", ts=ts, pl=pl, d=rid, b=ext.buyer_id, cpm=int(ext.price * MICROS))
            )
        if ctx.test:
            # Test traffic (OpenRTB test = 1) gets the same answer but is never billable: its
            # events are flagged (counted apart, never billed), and nothing is charged to a
            # budget or counted against a frequency cap.
            self.sink.emit([msgspec.structs.replace(e, tt=1) for e in events])
            self._notify_buyers(ctx, outcome)
            return
        self.sink.emit(events)
        if user and not ctx.ivt:
            self._count_frequency(user, outcome, ctx.now)
        self._notify_buyers(ctx, outcome)

    def record_no_ad(self, placement: PlacementSnap, ctx: AdContext, reason: str) -> None:
        """A "req" per slot for a request refused before the auction, with why."""
        ts = int(ctx.now * 1000)
        g = geo_device(ctx.geo.country, ctx.device.devicetype)
        events = [
            Event(t="req", ts=ts, pl=placement.id, d=ctx.request_id, dr=ctx.source, g=g)
            for _ in ctx.imps
        ]
        ledger = ctx.permissions.ledger_text() if ctx.permissions else f"→ none:{reason}"
        events[0] = msgspec.structs.replace(events[0], cs=ledger, rq=ctx.correlation_id)
        if ctx.test:
            events = [msgspec.structs.replace(e, tt=1) for e in events]
        self.sink.emit(events)

    def _count_frequency(self, user: str, outcome: Outcome, now: float) -> None:
        key = self.keys.frequency(user)
        counted = False
        for d in outcome.decisions:
            if d.line_item is not None and d.line_item.frequency_caps:
                for name, _limit, _ttl in cap_fields(d.line_item, now):
                    self.sink.call("HINCRBY", key, name, 1)
                counted = True
        if counted:
            self.sink.call("EXPIRE", key, CAP_TTL_SECONDS)

    def _notify_buyers(self, ctx: AdContext, outcome: Outcome) -> None:
        """Win notices (nurl) for external winners, loss notices (lurl) for every external
        bid that lost an auction, whether or not anything won it."""
        for d in outcome.decisions:
            ext: ExternalBid | None = d.external
            if ext is not None and ext.nurl:
                values = auction_macros(ctx, ext, d.price, None)
                self.pool.notify(ext.nurl, values, buyer_id=ext.buyer_id)
        if outcome.lost:
            self.pool.notify_losses(ctx, outcome.lost)


def req_event(
    d: Decision, ts: int, pl: int, rid: str, ctx: AdContext, g: str, candidates: int = 0
) -> Event:
    """A filled slot's "req"; `g` is the request's `geo_device`, computed once by the caller."""
    x = slot_features(ctx, d, candidates) if candidates else ""
    li = d.line_item
    if li is not None and d.creative is not None:
        return Event(
            t="req", ts=ts, pl=pl, li=li.id, cp=li.campaign_id,
            adv=li.advertiser_id, cr=d.creative.id, d=rid, x=x, dr=ctx.source, g=g,
        )  # fmt: skip
    return Event(t="req", ts=ts, pl=pl, d=rid, b=d.external.buyer_id, x=x, dr=ctx.source, g=g)
