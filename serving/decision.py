"""Deciding an ad request: from the request's context to the engine's outcome, charged.

Steps 2-5 of the request path (`serving.app`): the placement, the rate limit, enrichment and
the consent policy, invalid traffic, the pseudonymous id, the caps and synced uids, the
external buyers in parallel, the auction (`serving.engine`, `serving.pods.fill`), the
markup a winning bid left to fetch, the charges of our own wins; then what was decided goes
to the sink (`serving.recording`).
"""

import asyncio
import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from compliance.anonymise import truncate_ip
from compliance.policy import apply_gdpr_by_geography, evaluate
from compliance.pseudonym import Pseudonymiser
from serving import openrtb
from serving.buyers.bids import ExternalBid
from serving.buyers.pool import BuyerPool
from serving.config import ServingConfig
from serving.context import AdContext
from serving.engine import Decision, Outcome, decide
from serving.enrich import Enricher
from serving.events import EventSink
from serving.http import HttpError, Scope, all_headers, header
from serving.ids import decision_rng
from serving.index import Index
from serving.ivt.judge import DATACENTER, IvtState
from serving.keys import RedisKeys
from serving.limits.ratelimit import RateLimiter
from serving.pods.fill import decide_pods
from serving.recording import RequestRecorder
from serving.render import auction_macros, costs
from serving.snapshot import TIERS, PlacementSnap
from serving.store import SnapshotStore
from serving.sync import parse_buyer_uids
from serving.targeting import BUDGET, PacingRates, RequestState

log = logging.getLogger(__name__)

# Margin kept between the buyers' deadline and the caller's tmax for our own work.
TMAX_MARGIN_MS = 20
HOUSE_TIER = TIERS["house"]


class NoAd(Exception):
    """Nothing is served, for a stated reason (a 204, an empty VAST, an OpenRTB no-bid)."""

    def __init__(self, reason: str, nbr: int = openrtb.NBR_UNKNOWN) -> None:
        super().__init__(reason)
        self.reason, self.nbr = reason, nbr


class Decider:
    """Decides one ad request on the snapshot in use; raises NoAd or an HttpError instead."""

    def __init__(
        self,
        config: ServingConfig,
        *,
        store: SnapshotStore,
        sink: EventSink,
        keys: RedisKeys,
        limiter: RateLimiter,
        enricher: Enricher,
        ivt: IvtState,
        pool: BuyerPool,
        pseudonyms: Pseudonymiser,
        recorder: RequestRecorder,
        client_ip: Callable[[Scope], str | None],
    ) -> None:
        self.config, self.store, self.sink, self.keys = config, store, sink, keys
        self.limiter, self.enricher, self.ivt, self.pool = limiter, enricher, ivt, pool
        self.pseudonyms, self.recorder, self.client_ip = pseudonyms, recorder, client_ip
        self._fx_in_use: Mapping[str, Decimal] = config.fx
        # (index, pacing) -> the pacing rates with every paid line item stopped (`decide`).
        self._house_only: tuple[Index, PacingRates, PacingRates] | None = None

    def explain_buyers(self, ctx: AdContext) -> list[dict[str, Any]]:
        """What each buyer would be allowed on this request, and the GVL bases behind it
        (explain=1 calls no buyer)."""
        index, permissions = self.store.index, ctx.permissions
        if index is None or permissions is None:
            return []
        return [
            {
                "buyer": b.id,
                "name": b.name,
                "gvl_vendor_id": b.gvl_vendor_id,
                "gvl_version": b.gvl.gvl_version if b.gvl is not None else None,
                **permissions.explain_buyer(b.gvl_vendor_id, b.gvl),
            }
            for b in index.buyers
        ]

    def fx(self) -> Mapping[str, Decimal]:
        """The FX table of the snapshot in use (the configured constants before the first);
        the buyer pool follows it when a snapshot brings a new one. No Redis read."""
        index = self.store.index
        header = index.header if index is not None else None
        fx = header.fx if header is not None and header.fx else self.config.fx
        if fx is not self._fx_in_use:
            self._fx_in_use = fx
            self.pool.set_fx(fx)
        return fx

    async def decide(self, ctx: AdContext, scope: Scope) -> tuple[PlacementSnap, Outcome]:
        index = self.store.index
        if index is None:
            raise HttpError(503, "not_ready", "no campaign snapshot has been published yet")
        placement = index.placements_by_key.get(ctx.placement_key)
        if placement is None:
            raise HttpError(401, "unknown_placement", "the placement key is not known")
        now = ctx.now
        if not self.limiter.allow(ctx.placement_key, now):
            raise HttpError(429, "rate_limited", "too many requests for this placement key")
        if ctx.explain and not _staff(scope, index):
            raise HttpError(403, "forbidden", "explain=1 needs a staff API token")
        self.enricher.enrich(ctx, all_headers(scope))
        ctx.privacy = apply_gdpr_by_geography(
            ctx.privacy, ctx.geo.country, self.config.gdpr_countries
        )
        if ctx.device.is_crawler:
            self.recorder.record_no_ad(placement, ctx, "crawler")
            raise NoAd("crawler", openrtb.NBR_KNOWN_SPIDER)
        rules = self.ivt.rules
        address = ctx.device.ip or ctx.device.ipv6 or self.client_ip(scope)
        ctx.network = truncate_ip(address) or ""
        if rules.enabled and address and address in self.ivt.datacenter:
            ctx.ivt = DATACENTER
            if rules.datacenter_action == "no_ad":
                self.recorder.record_no_ad(placement, ctx, DATACENTER)
                raise NoAd(DATACENTER, openrtb.NBR_PROXY)
        permissions = evaluate(ctx.privacy, self.config.gvl_vendor_id)
        ctx.permissions = permissions
        if not permissions.serve:
            self.recorder.record_no_ad(placement, ctx, permissions.reason)
            raise NoAd(permissions.reason, openrtb.NBR_UNKNOWN)

        self.fx()  # the buyer pool converts bids with the snapshot's table
        user = ctx.pseudonym = self._pseudonym(ctx)
        # Paid demand fails closed while its events and charges cannot be recorded (Redis
        # down, hung or too slow): no buyers, no paid line items, house line items only. A
        # data-center address gets house line items only too, when it gets an ad at all.
        paid = self.sink.accepting and not ctx.ivt
        pacing = self.store.pacing if paid else self._house_pacing(index)
        # The buyers' synced uids are read with the caps, in the same batch, before the bid
        # requests are written: only when someone could receive one.
        syncs = paid and bool(user) and not ctx.explain and any(b.sync_url for b in index.buyers)
        caps: dict[str, int] | None = None
        if syncs:
            caps, ctx.buyer_uids = await self._caps_and_uids(user, index)
        buyers_round: asyncio.Task[Any] | None = None
        if index.buyers and not ctx.explain and paid:
            deadline = self._buyer_deadline(ctx)
            if deadline is not None:
                buyers_round = asyncio.get_running_loop().create_task(
                    self.pool.solicit(ctx, index.buyers, ctx.imps, deadline)
                )
        if not syncs:
            caps = await self._caps(user, index) if paid else None
        state = RequestState.of(
            ctx,
            now=now,
            exhausted=self.store.exhausted,
            pacing=pacing,
            # Seeded by our id of the request: ties, rotation and pacing draws replay
            # exactly given it, and a caller cannot pick them.
            rng=decision_rng(ctx.request_id),
            caps=caps,
        )
        external: list[ExternalBid] = []
        if buyers_round is not None:
            external = (await buyers_round).bids
        outcome = decide(index, placement, ctx, state, external)
        if ctx.pods:
            decide_pods(index, placement, ctx, state, external, outcome)
        if external:
            await self._fetch_missing_markup(ctx, outcome)
        # Test traffic (test = 1) is never charged: see `RequestRecorder.record`.
        reservations = None if ctx.test else self._charge_wins(outcome, int(ctx.now))
        if reservations is not None:
            await self._settle(outcome, reservations)
        self.recorder.record(placement, ctx, outcome, user, external, index.line_items)
        return placement, outcome

    def _house_pacing(self, index: Index) -> PacingRates:
        """The pacing rates with every line item but house ones stopped, once per index and
        pacing read (an outage's requests all share it)."""
        pacing = self.store.pacing
        cached = self._house_only
        if cached is not None and cached[0] is index and cached[1] is pacing:
            return cached[2]
        paid = frozenset(i for i, li in index.line_items.items() if li.tier != HOUSE_TIER)
        house = pacing.replace(exhausted=pacing.exhausted | paid)
        self._house_only = (index, pacing, house)
        return house

    async def _fetch_missing_markup(self, ctx: AdContext, outcome: Outcome) -> None:
        """A winning bid that came with only a win notice URL: its markup is that URL's body
        (OpenRTB allows it), fetched now, within the request's deadline; that fetch is the
        win notice. If it fails, the slot goes unfilled."""
        deadline = self._buyer_deadline(ctx) or time.monotonic() + 0.05
        kept = []
        for d in outcome.decisions:
            ext: ExternalBid | None = d.external
            if ext is not None and not ext.adm and ext.nurl:
                values = auction_macros(ctx, ext, d.price, None)
                markup = await self.pool.fetch_markup(
                    ext.nurl, values, deadline, buyer_id=ext.buyer_id
                )
                if markup is None:
                    continue
                d = dataclasses.replace(d, external=dataclasses.replace(ext, adm=markup, nurl=None))
            kept.append(d)
        outcome.decisions = kept

    def _buyer_deadline(self, ctx: AdContext) -> float | None:
        budget_ms = self.config.buyer_timeout_ms
        if ctx.tmax is not None:
            budget_ms = min(budget_ms, ctx.tmax - TMAX_MARGIN_MS)
        if budget_ms < 5:
            return None  # no time to ask anyone
        return time.monotonic() + budget_ms / 1000

    def _pseudonym(self, ctx: AdContext) -> str:
        """The keyed hash of the user's id, only where consent allows ids and personalising."""
        permissions = ctx.permissions
        if permissions is None or not (permissions.use_ids and permissions.personalise):
            return ""
        ifa = ctx.device.ifa
        # An all-zero IFA is what a device sends when tracking is limited: not an id.
        if ifa and (ctx.device.lmt or not ifa.strip("0-")):
            ifa = None
        raw = ctx.user_id or ifa
        return self.pseudonyms.pseudonym(raw, ctx.now) if raw else ""

    async def _caps(self, user: str, index: Index) -> dict[str, int] | None:
        if not user:
            return None  # capped line items are skipped without a usable id
        if not index.has_caps:
            return {}
        try:
            raw = await self.sink.fetch("HGETALL", self.keys.frequency(user))
        except Exception:
            log.warning("frequency counters unavailable; capped line items skipped")
            return None
        return {raw[i].decode(): int(raw[i + 1]) for i in range(0, len(raw), 2)}

    async def _caps_and_uids(
        self, user: str, index: Index
    ) -> tuple[dict[str, int] | None, Mapping[int, str]]:
        """The frequency counters and the sync table of one pseudonym, in one batch."""
        reads = [self.sink.fetch("HGETALL", self.keys.sync(user))]
        if index.has_caps:
            reads.append(self.sink.fetch("HGETALL", self.keys.frequency(user)))
        try:
            replies = await asyncio.gather(*reads)
        except Exception:
            log.warning("frequency counters and synced uids unavailable")
            return (None if index.has_caps else {}), {}
        uids = parse_buyer_uids(replies[0])
        if not index.has_caps:
            return {}, uids
        raw = replies[1]
        return {raw[i].decode(): int(raw[i + 1]) for i in range(0, len(raw), 2)}, uids

    def _charge_wins(
        self, outcome: Outcome, issued_at: int
    ) -> list[tuple[Decision, "asyncio.Future[bool]"]] | None:
        """Charge our own CPM wins now, at the decision (`serving.spend`). Nothing waits
        unless a budget is near its end: those wins come back as reservations to settle."""
        reservations = None
        for d in outcome.decisions:
            li = d.line_item
            if li is not None:
                cpm_micros, _ = costs(li, d.price)
                pending = self.store.spend.charge_win(self.sink, li, cpm_micros, issued_at)
                if pending is not None:
                    reservations = reservations or []
                    reservations.append((d, pending))
        return reservations

    async def _settle(
        self, outcome: Outcome, reservations: list[tuple[Decision, "asyncio.Future[bool]"]]
    ) -> None:
        """Wait for the reservations (one batch); a win whose budget had no room left is
        not served (a budget is never passed for it)."""
        refused = []
        for d, pending in reservations:
            if not await pending:
                refused.append(d)
        if refused:
            outcome.decisions = [d for d in outcome.decisions if all(d is not r for r in refused)]
            for d in refused:
                assert d.line_item is not None  # noqa: S101 - only our own wins reserve
                outcome.rejected.append((d.line_item.id, BUDGET))


def _staff(scope: Scope, index: Index) -> bool:
    auth = header(scope, b"authorization") or ""
    scheme, _, key = auth.partition(" ")
    if scheme.lower() != "bearer" or not key:
        return False
    return hashlib.sha256(key.strip().encode()).hexdigest() in index.staff_token_hashes
