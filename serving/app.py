"""The lean ASGI serving app: ad requests (first-party, OpenRTB 2.6, VAST) and tracking.

It does not pass through Django's request machinery and never touches the ORM: it decides
on the in-memory snapshot and talks to Redis only in batches (see `serving.events`).

The request path (DESIGN.md):
1. front door: body limit (413), schema (400 naming the field), placement key (401), rate
   limit per key (429), request id;
2. orchestrator: enrichment (geo, device, crawlers), the consent policy, a pseudonymous
   user id where consent allows;
3-5. candidates from the index, external buyers in parallel, the auction (`serving.engine`);
6. rendering with signed tracking URLs;
7. one batch of events and counters, never waited on.
"""

import asyncio
import dataclasses
import hashlib
import logging
import os
import random
import re
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

import msgspec
from redis.asyncio import Redis

from compliance.anonymise import truncate_ip
from compliance.policy import PrivacySignals, evaluate
from compliance.pseudonym import Pseudonymiser
from serving import clock as spend_clock
from serving import openrtb
from serving.buyers import BuyerPool, ExternalBid
from serving.context import AUDIO, VIDEO, AdContext, DeviceInfo, Imp, VideoSpec
from serving.engine import Decision, Outcome, decide
from serving.enrich import Enricher
from serving.events import Event, EventSink
from serving.index import Index
from serving.keys import RedisKeys, day_of
from serving.macros import macro_values, substitute
from serving.ratelimit import RateLimiter
from serving.schema import RequestError, ad_request_decoder, to_context
from serving.snapshot import LineItemSnap, PlacementSnap
from serving.store import SnapshotStore
from serving.targeting import RequestState, cap_fields
from serving.tokens import InvalidToken, TokenKind, TokenSigner, TrackingToken

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_BODY = 256 * 1024
MICROS = Decimal(1_000_000)
GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
JSON = (b"content-type", b"application/json")
XML = (b"content-type", b"application/xml")
NO_STORE = (b"cache-control", b"no-store")
EMPTY_VAST = b'<VAST version="4.2"/>'
# Margin kept between the buyers' deadline and the caller's tmax for our own work.
TMAX_MARGIN_MS = 20
# Frequency counters of a pseudonymous id outlive no pseudonym period by more than this.
CAP_TTL_SECONDS = 31 * 86400
MTYPES = {"banner": 1, "video": 2, "audio": 3, "native": 4}

_json = msgspec.json.Encoder(decimal_format="number")
# A caller's own request id is echoed when it is short and plain; otherwise we make one.
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


@dataclass(frozen=True, slots=True)
class ServingConfig:
    redis_url: str
    key_prefix: str
    signing_key: str
    public_url: str
    token_ttl: int = 3600
    refresh_interval: float = 1.0
    gvl_vendor_id: int = 0
    currency: str = "USD"
    fx: Mapping[str, Decimal] = field(default_factory=lambda: {"USD": Decimal(1)})
    rate_limit: int = 0
    buyer_timeout_ms: int = 120
    geoip_path: str | None = None
    country_header: str | None = None
    region_header: str | None = None
    pseudonym_secret: bytes = b"test"
    pseudonym_rotation_seconds: int = 30 * 86400

    @classmethod
    def from_settings(cls) -> "ServingConfig":
        from django.conf import settings

        from campaigns.snapshot import fx_rates

        return cls(
            redis_url=settings.REDIS_URL,
            key_prefix=settings.REDIS_KEY_PREFIX,
            signing_key=settings.SERVING_SIGNING_KEY,
            public_url=settings.SERVING_PUBLIC_URL,
            token_ttl=settings.SERVING_TOKEN_TTL_SECONDS,
            gvl_vendor_id=settings.GVL_VENDOR_ID,
            currency=settings.SERVING_CURRENCY,
            fx=fx_rates(),
            rate_limit=settings.SERVING_RATE_LIMIT,
            buyer_timeout_ms=settings.SERVING_BUYER_TIMEOUT_MS,
            geoip_path=settings.GEOIP_PATH,
            country_header=settings.SERVING_COUNTRY_HEADER,
            region_header=settings.SERVING_REGION_HEADER,
            pseudonym_secret=str(settings.PSEUDONYM_SECRET).encode(),
            pseudonym_rotation_seconds=settings.PSEUDONYM_ROTATION_DAYS * 86400,
        )


class HttpError(Exception):
    def __init__(self, status: int, error: str, detail: str = "") -> None:
        super().__init__(detail or error)
        self.status, self.error, self.detail = status, error, detail


class NoAd(Exception):
    """Nothing is served, for a stated reason (a 204, an empty VAST, an OpenRTB no-bid)."""

    def __init__(self, reason: str, nbr: int = openrtb.NBR_UNKNOWN) -> None:
        super().__init__(reason)
        self.reason, self.nbr = reason, nbr


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


class ServingApp:
    def __init__(self, config: ServingConfig) -> None:
        self.config = config
        self.keys = RedisKeys(config.key_prefix)
        self.signer = TokenSigner(config.signing_key)
        # Connections open lazily, on the first command inside the server's event loop. This
        # client serves the once-a-second snapshot and rate reads; the hot path's batches go
        # through the sink's own connection (`serving.wire`).
        self.redis = Redis.from_url(config.redis_url)
        self.store = SnapshotStore(self.redis, self.keys)
        self.sink = EventSink(config.redis_url, self.keys.events)
        self.limiter = RateLimiter(self.sink, config.key_prefix, config.rate_limit)
        self.enricher = Enricher(
            geoip_path=config.geoip_path,
            country_header=config.country_header,
            region_header=config.region_header,
        )
        self.pool = BuyerPool(currency=config.currency, fx=config.fx)
        self.pseudonyms = Pseudonymiser(config.pseudonym_secret, config.pseudonym_rotation_seconds)
        self._started = asyncio.Event()
        self._starting: asyncio.Lock | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def from_settings(cls) -> "ServingApp":
        return cls(ServingConfig.from_settings())

    # -- lifecycle ---------------------------------------------------------------------

    async def startup(self) -> None:
        """Connect and load the first snapshot once (single flight) before serving."""
        if self._started.is_set():
            return
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._started.is_set():
                return
            try:
                await self.store.refresh()
            except Exception:
                log.exception("first snapshot load failed; retrying in the background")
            loop = asyncio.get_running_loop()
            self._tasks = [
                loop.create_task(self.store.run(self.config.refresh_interval)),
                loop.create_task(self._flush_buyer_stats()),
            ]
            self._started.set()

    async def shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.sink.close()
        await self.pool.close()
        await self.redis.aclose()
        self._started.clear()

    async def _flush_buyer_stats(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.pool.flush_stats(self.redis, self.keys, day_of(time.time()))
            except Exception:
                log.warning("buyer counters not flushed; kept for the next try", exc_info=True)

    # -- ASGI ---------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        await self.startup()
        request_id = _header(scope, b"x-request-id") or ""
        if not _REQUEST_ID_RE.match(request_id):
            request_id = os.urandom(16).hex()
        try:
            await self._route(scope, receive, send, request_id)
        except HttpError as exc:
            body = (
                {"error": exc.error, "detail": exc.detail} if exc.detail else {"error": exc.error}
            )
            await _respond(send, exc.status, _json.encode(body), request_id, [JSON])

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _route(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        if path in ("/v1/ad", "/openrtb2/auction"):
            if method != "POST":
                raise HttpError(405, "method_not_allowed", "use POST")
            if path == "/v1/ad":
                await self._ad(scope, receive, send, request_id)
            else:
                await self._openrtb(scope, receive, send, request_id)
        elif path == "/v1/vast" and method in ("GET", "HEAD"):
            await self._vast(scope, send, request_id)
        elif path.startswith("/v1/imp/") and method in ("GET", "HEAD"):
            await self._impression(path.removeprefix("/v1/imp/"), send, request_id)
        elif path.startswith("/v1/click/") and method in ("GET", "HEAD"):
            await self._click(path.removeprefix("/v1/click/"), send, request_id)
        elif path.startswith("/v1/err/") and method in ("GET", "HEAD", "POST"):
            await self._creative_event(
                path.removeprefix("/v1/err/"), "err", scope, send, request_id
            )
        elif path.startswith("/v1/ev/") and method in ("GET", "HEAD", "POST"):
            await self._creative_event(path.removeprefix("/v1/ev/"), "evt", scope, send, request_id)
        elif path == "/v1/health":
            await self._health(send, request_id)
        else:
            raise HttpError(404, "not_found", f"no serving endpoint at {path}")

    # -- the three doors ------------------------------------------------------------------

    async def _ad(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        body = await _read_body(receive)
        now = time.time()
        try:
            request = ad_request_decoder.decode(body)
            ctx = to_context(
                request,
                request_id=request_id,
                now=now,
                sec_gpc=_header(scope, b"sec-gpc"),
                explain=_explain_asked(scope),
            )
        except msgspec.ValidationError as exc:
            raise HttpError(400, "invalid_request", str(exc)) from exc
        except msgspec.DecodeError as exc:
            raise HttpError(400, "malformed_json", str(exc)) from exc
        except RequestError as exc:
            raise HttpError(400, "invalid_request", str(exc)) from exc
        try:
            placement, outcome = await self._decide(ctx, scope)
        except NoAd as no_ad:
            await _respond(
                send, 204, b"", request_id, [(b"x-no-fill-reason", no_ad.reason.encode())]
            )
            return
        served = self._render_all(ctx, placement, outcome)
        if not served and outcome.explain is None:
            await _respond(send, 204, b"", request_id, [(b"x-no-fill-reason", b"no_eligible")])
            return
        payload: dict[str, Any] = {
            "id": request_id,
            "decisions": [_v1_decision(s) for s in served],
        }
        if outcome.explain is not None:
            payload["explain"] = outcome.explain
        await _respond(send, 200, _json.encode(payload), request_id, [JSON, NO_STORE])

    async def _openrtb(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        body = await _read_body(receive)
        now = time.time()
        try:
            request = openrtb.decode_bid_request(body)
            ctx = openrtb.to_context(
                request,
                request_id=request_id,
                now=now,
                currency=self.config.currency,
                fx=self.config.fx,
                sec_gpc=_header(scope, b"sec-gpc"),
                placement_key=_query(scope).get("placement"),
                explain=_explain_asked(scope),
            )
        except openrtb.OpenRtbError as exc:
            raise HttpError(400, "invalid_request", str(exc)) from exc
        headers = [(b"x-openrtb-version", b"2.6")]
        reply_currency = self._reply_currency(ctx)
        if reply_currency is None:
            await _respond(send, 204, b"", request_id, [*headers, (b"x-no-bid-reason", b"cur")])
            return
        try:
            placement, outcome = await self._decide(ctx, scope)
        except NoAd as no_ad:
            reason = [(b"x-no-bid-reason", f"{no_ad.nbr}:{no_ad.reason}".encode())]
            await _respond(send, 204, b"", request_id, headers + reason)
            return
        served = self._render_all(ctx, placement, outcome)
        if not served:
            await _respond(send, 204, b"", request_id, headers)
            return
        rate = self.config.fx[reply_currency]
        bids = [self._openrtb_bid(s, rate) for s in served]
        response = openrtb.encode_bid_response(
            request_id=request.id, bids=bids, currency=reply_currency
        )
        await _respond(send, 200, response, request_id, [JSON, NO_STORE, *headers])

    async def _vast(self, scope: Scope, send: Send, request_id: str) -> None:
        query = _query(scope)
        try:
            ctx = _vast_context(query, request_id, scope)
        except ValueError as exc:
            raise HttpError(400, "invalid_request", str(exc)) from exc
        try:
            placement, outcome = await self._decide(ctx, scope)
            served = self._render_all(ctx, placement, outcome)
        except NoAd:
            served = []
        body = served[0].markup.encode() if served else EMPTY_VAST
        await _respond(send, 200, body, request_id, [XML, NO_STORE])

    def _reply_currency(self, ctx: AdContext) -> str | None:
        if not ctx.cur or self.config.currency in ctx.cur:
            return self.config.currency
        return next((c for c in ctx.cur if c in self.config.fx), None)

    # -- the decision -------------------------------------------------------------------

    async def _decide(self, ctx: AdContext, scope: Scope) -> tuple[PlacementSnap, Outcome]:
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
        self.enricher.enrich(ctx, _headers(scope))
        if ctx.device.is_crawler:
            self._emit_no_ad(placement, ctx, "crawler", None)
            raise NoAd("crawler", openrtb.NBR_KNOWN_SPIDER)
        permissions = evaluate(ctx.privacy, self.config.gvl_vendor_id)
        ctx.permissions = permissions
        if not permissions.serve:
            self._emit_no_ad(placement, ctx, permissions.reason, None)
            raise NoAd(permissions.reason, openrtb.NBR_UNKNOWN)

        user = self._pseudonym(ctx)
        buyers_round: asyncio.Task[Any] | None = None
        if index.buyers and not ctx.explain:
            deadline = self._buyer_deadline(ctx)
            if deadline is not None:
                buyers_round = asyncio.get_running_loop().create_task(
                    self.pool.solicit(ctx, index.buyers, ctx.imps, deadline)
                )
        caps = await self._caps(user, index)
        state = RequestState.of(
            ctx,
            now=now,
            exhausted=self.store.exhausted,
            pacing=self.store.pacing,
            # Seeded by the request: ties and rotation replay exactly under explain=1.
            rng=random.Random(zlib.crc32(ctx.request_id.encode())),  # noqa: S311 - not a secret
            caps=caps,
        )
        external: list[ExternalBid] = []
        if buyers_round is not None:
            external = (await buyers_round).bids
        outcome = decide(index, placement, ctx, state, external)
        if external:
            await self._fetch_missing_markup(ctx, outcome)
        self._record(placement, ctx, outcome, user, external, index.line_items)
        return placement, outcome

    async def _fetch_missing_markup(self, ctx: AdContext, outcome: Outcome) -> None:
        """A winning bid that came with only a win notice URL: its markup is that URL's body
        (OpenRTB allows it), fetched now, within the request's deadline; that fetch is the
        win notice. If it fails, the slot goes unfilled."""
        deadline = self._buyer_deadline(ctx) or time.monotonic() + 0.05
        kept = []
        for d in outcome.decisions:
            ext: ExternalBid | None = d.external
            if ext is not None and not ext.adm and ext.nurl:
                markup = await self.pool.fetch_markup(
                    ext.nurl, _macros(ctx, ext, d.price, None), deadline, buyer_id=ext.buyer_id
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

    # -- recording ----------------------------------------------------------------------

    def _record(
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
        won = {d.imp.id: d for d in outcome.decisions}
        events: list[Event] = []
        for imp in ctx.imps:
            d = won.get(imp.id)
            if d is not None and d.line_item is not None:
                li = d.line_item
                assert d.creative is not None  # noqa: S101 - set with line_item
                events.append(
                    Event(
                        t="req", ts=ts, pl=pl, li=li.id, cp=li.campaign_id,
                        adv=li.advertiser_id, cr=d.creative.id, d=rid,
                    )
                )  # fmt: skip
            elif d is not None:
                events.append(Event(t="req", ts=ts, pl=pl, d=rid, b=d.external.buyer_id))
            else:
                events.append(Event(t="req", ts=ts, pl=pl, d=rid))
        permissions = ctx.permissions
        events[0] = msgspec.structs.replace(
            events[0],
            cs=permissions.ledger_text() if permissions else "",
            u=user,
            ip=truncate_ip(ctx.device.ip or ctx.device.ipv6) or "",
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
        self.sink.emit(events)
        self._charge_wins(outcome, int(ctx.now))
        if user:
            self._count_frequency(user, outcome, ctx.now)
        self._notify_buyers(ctx, outcome)

    def _emit_no_ad(
        self, placement: PlacementSnap, ctx: AdContext, reason: str, user: str | None
    ) -> None:
        ts = int(ctx.now * 1000)
        events = [Event(t="req", ts=ts, pl=placement.id, d=ctx.request_id) for _ in ctx.imps]
        ledger = ctx.permissions.ledger_text() if ctx.permissions else f"→ none:{reason}"
        events[0] = msgspec.structs.replace(events[0], cs=ledger)
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
        """Win notices (nurl) for external winners, loss notices (lurl) for the others."""
        for d in outcome.decisions:
            ext: ExternalBid | None = d.external
            if ext is not None and ext.nurl:
                self.pool.notify(ext.nurl, _macros(ctx, ext, d.price, None), buyer_id=ext.buyer_id)
            for bid, code in d.losses:
                loser = bid.payload
                if isinstance(loser, ExternalBid) and loser.lurl:
                    values = _macros(ctx, loser, None, code)
                    self.pool.notify(loser.lurl, values, buyer_id=loser.buyer_id)

    # -- rendering ----------------------------------------------------------------------

    def _render_all(
        self, ctx: AdContext, placement: PlacementSnap, outcome: Outcome
    ) -> list[Served]:
        now = int(ctx.now)
        return [
            self._render(ctx, d, placement, f"{ctx.request_id}-{n}", now)
            for n, d in enumerate(outcome.decisions)
        ]

    def _render(
        self, ctx: AdContext, d: Decision, placement: PlacementSnap, decision_id: str, now: int
    ) -> Served:
        if d.line_item is None:
            return self._render_external(ctx, d, placement, decision_id, now)
        li, creative = d.line_item, d.creative
        assert creative is not None  # noqa: S101 - set with line_item
        cpm_micros, click_micros = _costs(li, d.price)
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
        )
        # One signed token per decision, for its impression, click, error and event URLs
        # alike (the path says which): one HMAC per decision on the hot path.
        signed = self.signer.sign(token)
        base = self.config.public_url
        imp_url = f"{base}/v1/imp/{signed}"
        click_url = f"{base}/v1/click/{signed}"
        markup = _fill(creative.markup, imp_url, click_url, decision_id)
        native = _fill(creative.native, imp_url, click_url, decision_id)
        return Served(d, decision_id, creative.format, markup, imp_url, click_url, native)

    def _render_external(
        self, ctx: AdContext, d: Decision, placement: PlacementSnap, decision_id: str, now: int
    ) -> Served:
        ext: ExternalBid = d.external
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
            notice=substitute(ext.burl, _macros(ctx, ext, d.price, None)) if ext.burl else "",
        )
        imp_url = f"{self.config.public_url}/v1/imp/{self.signer.sign(token)}"
        markup = substitute(ext.adm or "", _macros(ctx, ext, d.price, None))
        fmt = {1: "banner", 2: "video", 3: "audio", 4: "native"}.get(ext.mtype or 1, "banner")
        return Served(d, decision_id, fmt, markup, imp_url, "")

    def _openrtb_bid(self, s: Served, rate: Decimal) -> openrtb.ResponseBid:
        d = s.decision
        w, h = _wh(d.size)
        crid: str | None
        cid: str | None
        mtype: int | None
        if d.line_item is not None and d.creative is not None:
            adomain, cat = tuple(d.creative.adomain), tuple(d.creative.categories)
            crid, cid = str(d.creative.id), str(d.line_item.campaign_id)
            adm, mtype = s.native or s.markup, MTYPES.get(s.format, 1)
        else:
            ext: ExternalBid = d.external
            adomain, cat, crid, cid = ext.adomain, ext.cat, ext.crid, ext.cid
            adm, mtype = s.markup, ext.mtype
        return openrtb.ResponseBid(
            id=s.decision_id, impid=d.imp.id, price=(d.price / rate).quantize(Decimal("0.0001")),
            adm=adm, adomain=adomain, crid=crid, cid=cid, cat=cat, w=w, h=h, mtype=mtype,
            dealid=d.deal_id, burl=s.imp_url,
        )  # fmt: skip

    # -- tracking -----------------------------------------------------------------------

    async def _impression(self, text: str, send: Send, request_id: str) -> None:
        token = self._verify(text, "imp")
        if not self._fresh(token):
            raise HttpError(410, "expired", "the impression token has expired")
        # A CPM impression was charged at its win: recording it clears the pending charge.
        new = await self._record_billable(token, "imp", cost=0, pending=token.cpm_micros)
        if new and token.notice:
            self.pool.notify(token.notice, {}, buyer_id=token.buyer_id)
        await _respond(send, 200, GIF, request_id, [(b"content-type", b"image/gif"), NO_STORE])

    async def _click(self, text: str, send: Send, request_id: str) -> None:
        # The decision's token ("clk" tokens were issued before one token served all URLs).
        token = self._verify(text, "imp", "clk")
        if not token.landing_url:  # external demand's clicks go through the buyer's markup
            raise HttpError(400, "invalid_token", "the token has no click destination")
        # A late click still takes the user to the advertiser; it is just not counted.
        if self._fresh(token):
            # CPC is charged on the click (micros per click, in billionths like all spend).
            await self._record_billable(token, "clk", cost=token.click_micros * 1000, pending=0)
        location = token.landing_url.encode()
        await _respond(send, 302, b"", request_id, [(b"location", location), NO_STORE])

    async def _creative_event(
        self, text: str, kind: TokenKind, scope: Scope, send: Send, request_id: str
    ) -> None:
        """A VAST error or tracking event, or an HTML render failure: counted, not billed."""
        token = self._verify(text, "imp")  # the impression's token, see _fill
        query = _query(scope)
        detail = (query.get("code") if kind == "err" else query.get("e")) or ""
        if self._fresh(token) and len(detail) <= 32:
            self.sink.emit(
                [
                    Event(
                        t=kind, ts=int(time.time() * 1000), pl=token.placement_id,
                        li=token.line_item_id, cp=token.campaign_id, adv=token.advertiser_id,
                        cr=token.creative_id, d=token.decision_id, r=detail,
                    )
                ]
            )  # fmt: skip
        await _respond(send, 200, GIF, request_id, [(b"content-type", b"image/gif"), NO_STORE])

    async def _health(self, send: Send, request_id: str) -> None:
        version = self.store.version
        status = 200 if version else 503
        body = _json.encode({"status": "ok" if version else "no_snapshot", "snapshot": version})
        await _respond(send, status, body, request_id, [JSON, NO_STORE])

    # -- helpers ------------------------------------------------------------------------

    def sign(self, token: TrackingToken) -> str:
        return self.signer.sign(token)

    def _verify(self, text: str, kind: TokenKind, *also: TokenKind) -> TrackingToken:
        try:
            return self.signer.verify(text, kind, *also)
        except InvalidToken as exc:
            raise HttpError(400, "invalid_token", str(exc)) from exc

    def _fresh(self, token: TrackingToken) -> bool:
        return time.time() - token.issued_at <= self.config.token_ttl

    def _charge_wins(self, outcome: Outcome, issued_at: int) -> None:
        """Charge our own CPM wins now, at the decision (`serving.spend`); nothing waits."""
        for d in outcome.decisions:
            li = d.line_item
            if li is not None:
                cpm_micros, _ = _costs(li, d.price)
                self.store.spend.charge_win(self.sink, li, cpm_micros, issued_at)

    async def _record_billable(
        self, token: TrackingToken, kind: TokenKind, cost: int, pending: int
    ) -> bool:
        """Record an impression or click once per decision (the rollups bill from these
        events); `cost` is charged now, `pending` was charged at the win."""
        now = spend_clock.now()
        event = Event(
            t=kind,
            ts=int(now * 1000),
            pl=token.placement_id,
            li=token.line_item_id,
            cp=token.campaign_id,
            adv=token.advertiser_id,
            cr=token.creative_id,
            # What the rollups bill: the impression's CPM micros, or the click's price in
            # billionths (CPC).
            cpm=token.cpm_micros if kind == "imp" else cost,
            d=token.decision_id,
            b=token.buyer_id,
        )
        return await self.store.spend.record_billable(
            self.sink,
            event,
            issued_at=token.issued_at,
            cost=cost if token.campaign_id else 0,
            pending=pending if token.campaign_id else 0,
            dedupe_key=self.keys.seen(kind, token.decision_id),
            dedupe_ttl=self.config.token_ttl + 3600,
        )


def _costs(li: LineItemSnap, price: Decimal) -> tuple[int, int]:
    """(CPM charged per impression, price of a click), micros of the campaign currency."""
    if li.bid_type == "cpc":
        ctr = Decimal(repr(li.predicted_ctr)) if li.predicted_ctr else Decimal("0.001")
        per_click = min(li.bid, price / (ctr * 1000))
        return 0, int(per_click / li.fx_rate * MICROS)
    return int(price / li.fx_rate * MICROS), 0


def _fill(template: str, imp_url: str, click_url: str, decision_id: str) -> str:
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
        out = out.replace("%%AD_SERVING_ID%%", decision_id).replace(
            "%%CACHEBUSTER%%",
            str(random.randrange(10**8, 10**9)),  # noqa: S311 - not a secret
        )
    return out


def _macros(
    ctx: AdContext, ext: ExternalBid, price: Decimal | None, loss: int | None
) -> dict[str, str]:
    return macro_values(
        auction_id=ctx.request_id,
        bid_id=ext.bid_id,
        imp_id=ext.imp_id,
        seat_id=ext.seat,
        ad_id=ext.crid,
        price=ext.in_buyer_currency(price) if price is not None else None,
        currency=ext.currency,
        loss=loss,
        imp_ts=int(ctx.now * 1000),
        bid_price=ext.original_price,
    )


def _v1_decision(s: Served) -> dict[str, Any]:
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


def _wh(size: str) -> tuple[int | None, int | None]:
    w, _, h = size.partition("x")
    return (int(w), int(h)) if w.isdigit() and h.isdigit() and w != "0" else (None, None)


def _staff(scope: Scope, index: Index) -> bool:
    auth = _header(scope, b"authorization") or ""
    scheme, _, key = auth.partition(" ")
    if scheme.lower() != "bearer" or not key:
        return False
    return hashlib.sha256(key.strip().encode()).hexdigest() in index.staff_token_hashes


def _explain_asked(scope: Scope) -> bool:
    return _query(scope).get("explain") == "1"


def _query(scope: Scope) -> dict[str, str]:
    raw = scope.get("query_string") or b""
    if not raw:
        return {}
    return {k: v[0] for k, v in parse_qs(raw.decode("latin-1")).items()}


def _int_param(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 6:
        raise ValueError(f"`{name}` must be a whole number, got {value!r}")
    return int(value)


def _vast_context(query: Mapping[str, str], request_id: str, scope: Scope) -> AdContext:
    """A video (or `format=audio`) request from a player's query string."""
    key = query.get("placement") or query.get("key")
    if not key:
        raise ValueError("`placement` is required")
    fmt = query.get("format", VIDEO)
    if fmt not in (VIDEO, AUDIO):
        raise ValueError("`format` must be video or audio")
    w, h = _int_param(query, "w"), _int_param(query, "h")
    spec = VideoSpec(
        mimes=tuple(m for m in query.get("mimes", "").split(",") if m),
        minduration=_int_param(query, "minduration"),
        maxduration=_int_param(query, "maxduration"),
        w=w,
        h=h,
    )
    client = scope.get("client")
    sids = query.get("gpp_sid", "")
    try:
        gpp_sid = tuple(int(s) for s in sids.split(",") if s)
    except ValueError as exc:
        raise ValueError("`gpp_sid` must be comma-separated numbers") from exc
    imp = Imp(
        id="1",
        sizes=(f"{w}x{h}",) if w and h else (),
        formats=frozenset({fmt}),
        video=spec if fmt == VIDEO else None,
        audio=spec if fmt == AUDIO else None,
    )
    return AdContext(
        request_id=request_id,
        source="vast",
        placement_key=key,
        imps=[imp],
        device=DeviceInfo(
            ua=_header(scope, b"user-agent"),
            ip=query.get("ip") or (client[0] if client else None),
            ifa=query.get("ifa"),
            lmt=_int_param(query, "lmt"),
        ),
        user_id=query.get("uid"),
        privacy=PrivacySignals(
            gdpr=_int_param(query, "gdpr"),
            tc_string=query.get("gdpr_consent"),
            us_privacy=query.get("us_privacy"),
            gpp=query.get("gpp"),
            gpp_sid=gpp_sid,
            coppa=_int_param(query, "coppa"),
            gpc=_header(scope, b"sec-gpc"),
            lmt=_int_param(query, "lmt"),
        ),
        explain=False,
        now=time.time(),
    )


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise HttpError(413, "body_too_large", f"the body is over {MAX_BODY} bytes")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    request_id: str,
    headers: list[tuple[bytes, bytes]],
) -> None:
    all_headers = [*headers, (b"x-request-id", request_id.encode())]
    if status != 204:
        all_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body if status != 204 else b""})
