"""The lean ASGI serving app: ad requests (first-party, OpenRTB 2.6, VAST) and tracking.

It does not pass through Django's request machinery and never touches the ORM: it decides
on the in-memory snapshot and talks to Redis only in batches (see `serving.events`).

The request path (DESIGN.md):
1. front door: body limit (413), schema (400 naming the field), placement key (401), rate
   limit per key (429), request id;
2. orchestrator: enrichment (geo, device, crawlers), the consent policy, a pseudonymous
   user id where consent allows;
3-5. candidates from the index, external buyers in parallel, the auction (`serving.engine`);
6. rendering with signed tracking URLs (`serving.render`);
7. one batch of events and counters, never waited on.
"""

import asyncio
import dataclasses
import hashlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from compliance.anonymise import truncate_ip
from compliance.geography import GDPR_COUNTRIES
from compliance.policy import apply_gdpr_by_geography, evaluate
from compliance.pseudonym import Pseudonymiser
from serving import clock as spend_clock
from serving import openrtb
from serving.buyers.bids import ExternalBid
from serving.buyers.pool import BuyerPool
from serving.cluster import redis_client
from serving.context import AdContext
from serving.conversions import PIXEL as PIXEL_FIELDS
from serving.conversions import ClickId, ClickIds, conversion_event, parse_conversion
from serving.engine import Decision, Outcome, decide
from serving.enrich import Enricher
from serving.events import KNOWN_PARTITIONS, Event, EventSink, geo_device
from serving.http import (
    GIF,
    JSON,
    NO_STORE,
    XML,
    BodyReads,
    HttpError,
    Receive,
    Scope,
    Send,
    all_headers,
    header,
    query_params,
    respond,
)
from serving.ids import correlation_id, decision_rng, new_decision_id
from serving.index import Index
from serving.ivt.events import EventScreen
from serving.ivt.judge import DATACENTER, NETWORK_CHANGED, PREFETCH, IvtRules, IvtState
from serving.ivt.judge import REFRESH_SECONDS as IVT_REFRESH_SECONDS
from serving.keys import RedisKeys, day_of
from serving.limits.fleet import FleetLimits
from serving.limits.ratelimit import RateLimiter
from serving.measure import event_name, record_event
from serving.metrics import (
    AccessLog,
    ServingMetrics,
    door_of,
    process_name,
    publish_forever,
    publish_once,
    state_of,
)
from serving.netguard import FetchPolicy
from serving.outage import Outage
from serving.pods.fill import decide_pods
from serving.pods.response import pod_bids
from serving.pods.vast import pod_vast
from serving.render import MICROS, Renderer, auction_macros, costs, v1_decision
from serving.request_keys import DRAIN_SECONDS, RequestKeyDrain
from serving.schema import RequestError, ad_request_decoder, to_context, vast_context
from serving.snapshot import TIERS, BuyerSnap, LineItemSnap, PlacementSnap
from serving.store import SnapshotStore
from serving.sync import UserSync, parse_buyer_uids, pixel_context, raw_user_id
from serving.targeting import BUDGET, PacingRates, RequestState, cap_fields
from serving.telemetry import slot_features
from serving.tokens import InvalidToken, TokenKind, TokenSigner, TrackingToken

log = logging.getLogger(__name__)

EMPTY_VAST = b'<VAST version="4.2"/>'
# Margin kept between the buyers' deadline and the caller's tmax for our own work.
TMAX_MARGIN_MS = 20
# Frequency counters of a pseudonymous id outlive no pseudonym period by more than this.
CAP_TTL_SECONDS = 31 * 86400

_json = msgspec.json.Encoder(decimal_format="number")
# Tracking doors while Redis is unavailable: serving resumes within a second or two of its
# return (README "Redis outage"), so a retry after this many seconds will most likely land.
RETRY_AFTER = (b"retry-after", b"5")
HOUSE_TIER = TIERS["house"]


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
    # The fleet-wide circuit breaker (`serving.limits.fleet`): opens for every process when
    # this share of the fleet's calls to a buyer failed over the window, given enough calls.
    buyer_breaker_error_rate: float = 0.5
    buyer_breaker_min_calls: int = 20
    buyer_breaker_window: int = 10
    buyer_breaker_cooldown: float = 5.0
    body_timeout: float = 5.0
    redis_timeout: float = 1.0
    geoip_path: str | None = None
    country_header: str | None = None
    region_header: str | None = None
    pseudonym_secret: bytes = b"test"
    pseudonym_rotation_seconds: int = 30 * 86400
    # Networks the server may fetch from although they are not public (serving.netguard).
    fetch_allowed_networks: tuple[str, ...] = ()
    # Countries where a request without regs.gdpr is treated as gdpr = 1.
    gdpr_countries: frozenset[str] = GDPR_COUNTRIES
    # How long a buyer's uid stays in the sync table after its last sync.
    sync_ttl: int = 30 * 86400
    # Share of requests written to the access log (logger serving.access, INFO).
    access_log_sample: float = 0.01
    # Candidates recorded per filled slot for the telemetry files (0: no features recorded).
    telemetry_candidates: int = 0
    stream_partitions: int = 1
    # Invalid traffic (`serving.ivt`): the thresholds until ad ops publish others, the
    # data-center list loaded at start, and the header our proxy puts the client's address in.
    ivt_rules: IvtRules = field(default_factory=IvtRules)
    ivt_datacenter_file: str | None = None
    client_ip_header: str = ""

    @classmethod
    def from_settings(cls) -> "ServingConfig":
        from django.conf import settings

        # The constants only: no database at start. The live table comes with each snapshot.
        from campaigns.fx.services import configured_fx_rates

        return cls(
            redis_url=settings.REDIS_URL,
            key_prefix=settings.REDIS_KEY_PREFIX,
            signing_key=settings.SERVING_SIGNING_KEY,
            public_url=settings.SERVING_PUBLIC_URL,
            token_ttl=settings.SERVING_TOKEN_TTL_SECONDS,
            gvl_vendor_id=settings.GVL_VENDOR_ID,
            currency=settings.SERVING_CURRENCY,
            fx=configured_fx_rates(),
            rate_limit=settings.SERVING_RATE_LIMIT,
            buyer_timeout_ms=settings.SERVING_BUYER_TIMEOUT_MS,
            buyer_breaker_error_rate=settings.SERVING_BUYER_BREAKER_ERROR_RATE,
            buyer_breaker_min_calls=settings.SERVING_BUYER_BREAKER_MIN_CALLS,
            buyer_breaker_window=settings.SERVING_BUYER_BREAKER_WINDOW_SECONDS,
            buyer_breaker_cooldown=settings.SERVING_BUYER_BREAKER_COOLDOWN_SECONDS,
            body_timeout=settings.SERVING_BODY_TIMEOUT_SECONDS,
            redis_timeout=settings.SERVING_REDIS_TIMEOUT_SECONDS,
            geoip_path=settings.GEOIP_PATH,
            country_header=settings.SERVING_COUNTRY_HEADER,
            region_header=settings.SERVING_REGION_HEADER,
            pseudonym_secret=str(settings.PSEUDONYM_SECRET).encode(),
            pseudonym_rotation_seconds=settings.PSEUDONYM_ROTATION_DAYS * 86400,
            fetch_allowed_networks=tuple(settings.SERVING_FETCH_ALLOWED_NETWORKS),
            telemetry_candidates=settings.TELEMETRY_CANDIDATES if settings.TELEMETRY_ENABLED else 0,
            stream_partitions=settings.EVENT_STREAM_PARTITIONS,
            gdpr_countries=frozenset(settings.GDPR_COUNTRIES),
            sync_ttl=settings.SYNC_TTL_SECONDS,
            access_log_sample=settings.SERVING_ACCESS_LOG_SAMPLE,
            ivt_rules=IvtRules.from_settings(),
            ivt_datacenter_file=settings.IVT_DATACENTER_FILE or None,
            client_ip_header=settings.SERVING_CLIENT_IP_HEADER.lower(),
        )


class NoAd(Exception):
    """Nothing is served, for a stated reason (a 204, an empty VAST, an OpenRTB no-bid)."""

    def __init__(self, reason: str, nbr: int = openrtb.NBR_UNKNOWN) -> None:
        super().__init__(reason)
        self.reason, self.nbr = reason, nbr


class ServingApp:
    def __init__(self, config: ServingConfig) -> None:
        self.config = config
        self.keys = RedisKeys.for_url(config.key_prefix, config.redis_url, config.stream_partitions)
        self.signer = TokenSigner(config.signing_key)
        self.click_ids = ClickIds(config.signing_key)
        self.renderer = Renderer(self.signer, config.public_url, config.currency)
        self.bodies = BodyReads(config.body_timeout)
        # Connections open lazily, on the first command inside the server's event loop. This
        # client serves the once-a-second snapshot and rate reads; the hot path's batches go
        # through the sink's own connection (`serving.wire`).
        # Every wait on Redis is bounded: a hung server must not hang requests or tasks.
        timeout = config.redis_timeout
        self.redis: Redis = redis_client(config.redis_url, timeout)
        self.outage = Outage()
        self.store = SnapshotStore(self.redis, self.keys)
        self.sink = EventSink(
            config.redis_url, self.keys.events, self.keys.event_streams(config.stream_partitions),
            timeout=timeout, outage=self.outage,
        )  # fmt: skip
        # (index, pacing) -> the pacing rates with every paid line item stopped (`_decide`).
        self._house_only: tuple[Index, PacingRates, PacingRates] | None = None
        self.limiter = RateLimiter(self.sink, config.key_prefix, config.rate_limit)
        self.enricher = Enricher(
            geoip_path=config.geoip_path,
            country_header=config.country_header,
            region_header=config.region_header,
        )
        # Buyers' QPS caps and circuits hold across the fleet, through the sink's batches.
        self.fleet = FleetLimits(
            self.sink, self.keys,
            error_rate=config.buyer_breaker_error_rate, min_calls=config.buyer_breaker_min_calls,
            window=config.buyer_breaker_window, cooldown=config.buyer_breaker_cooldown,
        )  # fmt: skip
        self.pool = BuyerPool(
            currency=config.currency,
            fx=config.fx,
            fetch_policy=FetchPolicy.of(config.fetch_allowed_networks),
            breaker_cooldown=config.buyer_breaker_cooldown,
            fleet=self.fleet,
        )
        self._fx_in_use: Mapping[str, Decimal] = config.fx
        self.pseudonyms = Pseudonymiser(config.pseudonym_secret, config.pseudonym_rotation_seconds)
        self.user_sync = UserSync(
            self.sink, self.keys, self.pseudonyms, config.public_url, config.sync_ttl
        )
        self._started = asyncio.Event()
        self._starting: asyncio.Lock | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.request_keys = RequestKeyDrain()
        self.metrics = ServingMetrics()
        self.access_log = AccessLog(config.access_log_sample)
        self._metrics_key = self.keys.serving_metrics(process_name())
        self.ivt = IvtState.from_file(config.ivt_rules, config.ivt_datacenter_file)
        self._client_ip_header = config.client_ip_header.encode()
        self.screen = EventScreen(
            self.ivt, self.keys, lambda ua: self.enricher.lookup_ua(ua).is_crawler,
            self._client_ip, config.token_ttl + 3600,
        )  # fmt: skip

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
            except (RedisError, OSError) as exc:
                self.outage.failed("snapshot", exc)
            except Exception:
                log.exception("first snapshot load failed; retrying in the background")
            loop = asyncio.get_running_loop()
            self._tasks = [
                loop.create_task(self.store.run(self.config.refresh_interval, self.outage)),
                loop.create_task(self._flush_buyer_stats()),
                loop.create_task(self.fleet.run()),
                loop.create_task(self._drain_request_keys()),
                loop.create_task(self.bodies.watch()),
                loop.create_task(self._refresh_ivt_forever()),
                loop.create_task(
                    publish_forever(self.metrics, self.redis, self._metrics_key, self._state)
                ),
            ]
            if self.config.stream_partitions > 1:
                # With the first batch: readers must know to read every partition.
                known = (self.keys.event_partitions,)
                self.sink.script(KNOWN_PARTITIONS, known, (self.config.stream_partitions,))
            self._started.set()

    async def shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.sink.close()
        await self.pool.close()
        await self.redis.aclose()
        self.store.forget()
        self._started.clear()

    async def publish_metrics(self) -> None:
        """This process's metrics to Redis now (they also go every few seconds)."""
        await publish_once(self.metrics, self.redis, self._metrics_key, self._state)

    def _state(self) -> dict[str, Any]:
        """This moment's state, published with the counters (`serving.metrics`)."""
        return state_of(self.store, self.sink, self.outage, self.pool)

    async def refresh_ivt(self) -> None:
        """The thresholds and data-center list published in Redis (admin, refresh job)."""
        await self.screen.refresh(self.redis)

    async def _refresh_ivt_forever(self) -> None:
        while True:
            try:
                await self.refresh_ivt()
            except (RedisError, OSError) as exc:
                self.outage.failed("ivt rules", exc)
            except Exception:
                log.warning("invalid-traffic rules not refreshed", exc_info=True)
            else:
                self.outage.ok("ivt rules")
            await asyncio.sleep(IVT_REFRESH_SECONDS)

    async def _drain_request_keys(self) -> None:
        while True:
            await asyncio.sleep(DRAIN_SECONDS)
            try:
                self.request_keys.drain(self.store.index, self.sink)
                self.pool.latency_counts.drain(self.sink, int(time.time() * 1000))
            except Exception:
                log.exception("request-key counts or buyer latencies not drained")

    async def _flush_buyer_stats(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.pool.flush_stats(self.redis, self.keys, day_of(time.time()))
            except (RedisError, OSError) as exc:  # kept for the next try; said once per outage
                self.outage.failed("buyer counters", exc)
            except Exception:
                log.warning("buyer counters not flushed; kept for the next try", exc_info=True)
            else:
                self.outage.ok("buyer counters")

    # -- ASGI ---------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        await self.startup()
        # Our own id for every request; the caller's, when it sent one, is only echoed
        # (x-request-id) and recorded for correlation (`serving.ids`).
        ours = new_decision_id()
        theirs = correlation_id(header(scope, b"x-request-id"))
        request_id = theirs or ours
        door = door_of(scope["path"])
        send, seen = self.metrics.watch(door, send)
        started = time.perf_counter()
        try:
            await self._route(scope, receive, send, request_id, ours)
        except HttpError as exc:
            body = (
                {"error": exc.error, "detail": exc.detail} if exc.detail else {"error": exc.error}
            )
            await respond(send, exc.status, _json.encode(body), request_id, [JSON, *exc.headers])
        except (ConnectionError, TimeoutError, RedisError) as exc:
            # Any other wait on Redis that failed: a 503 to retry, never a 500 with a trace
            # (the outage itself is logged once, by the part that saw it first).
            log.debug("answered 503, Redis unavailable: %s", exc)
            answer = _json.encode({"error": "redis_unavailable", "detail": str(exc)})
            await respond(send, 503, answer, request_id, [JSON, RETRY_AFTER])
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.observe(door, seen[0], elapsed, seen[1])
            if self.access_log.sample and self.access_log.draw():
                self.access_log.write(scope, door, seen[0], elapsed, request_id, ours)

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

    async def _route(
        self, scope: Scope, receive: Receive, send: Send, request_id: str, ours: str
    ) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        if path in ("/v1/ad", "/openrtb2/auction"):
            if method != "POST":
                raise HttpError(405, "method_not_allowed", "use POST")
            if path == "/v1/ad":
                await self._ad(scope, receive, send, request_id, ours)
            else:
                await self._openrtb(scope, receive, send, request_id, ours)
        elif path == "/v1/vast" and method in ("GET", "HEAD"):
            await self._vast(scope, send, request_id, ours)
        elif path.startswith("/v1/imp/") and method in ("GET", "HEAD"):
            await self._impression(path.removeprefix("/v1/imp/"), scope, send, request_id)
        elif path.startswith("/v1/click/") and method in ("GET", "HEAD"):
            await self._click(path.removeprefix("/v1/click/"), scope, send, request_id)
        elif path.startswith("/v1/err/") and method in ("GET", "HEAD", "POST"):
            await self._creative_event(
                path.removeprefix("/v1/err/"), "err", scope, send, request_id
            )
        elif path.startswith("/v1/ev/") and method in ("GET", "HEAD", "POST"):
            await self._creative_event(path.removeprefix("/v1/ev/"), "evt", scope, send, request_id)
        elif path == "/v1/conv" and method in ("GET", "HEAD"):
            await self._conversion(scope, send, request_id)
        elif path == "/v1/sync" and method in ("GET", "HEAD"):
            await self._sync(scope, send, request_id)
        elif path == "/v1/sync/return" and method in ("GET", "HEAD"):
            await self._sync_return(scope, send, request_id)
        elif path == "/v1/health":
            await self._health(send, request_id)
        else:
            raise HttpError(404, "not_found", f"no serving endpoint at {path}")

    # -- the three doors ------------------------------------------------------------------

    async def _ad(
        self, scope: Scope, receive: Receive, send: Send, request_id: str, ours: str
    ) -> None:
        body = await self.bodies.read(receive)
        now = time.time()
        try:
            request = ad_request_decoder.decode(body)
            ctx = to_context(
                request,
                request_id=ours,
                correlation_id=request_id if request_id != ours else "",
                now=now,
                sec_gpc=header(scope, b"sec-gpc"),
                explain=_explain_asked(scope),
            )
        except msgspec.ValidationError as exc:
            raise HttpError(400, "invalid_request", str(exc)) from exc
        except msgspec.DecodeError as exc:
            raise HttpError(400, "malformed_json", str(exc)) from exc
        except UnicodeDecodeError as exc:
            raise _bad_utf8(exc) from exc
        except RequestError as exc:
            raise HttpError(400, "invalid_request", str(exc)) from exc
        try:
            placement, outcome = await self._decide(ctx, scope)
        except NoAd as no_ad:
            await respond(
                send, 204, b"", request_id, [(b"x-no-fill-reason", no_ad.reason.encode())]
            )
            return
        served = self.renderer.render_all(ctx, placement, outcome)
        if not served and outcome.explain is None:
            await respond(send, 204, b"", request_id, [(b"x-no-fill-reason", b"no_eligible")])
            return
        payload: dict[str, Any] = {
            "id": ours,
            "decisions": [v1_decision(s) for s in served],
        }
        if outcome.explain is not None:
            payload["explain"] = outcome.explain
            payload["buyers"] = self._explain_buyers(ctx)
        await respond(send, 200, _json.encode(payload), request_id, [JSON, NO_STORE])

    def _explain_buyers(self, ctx: AdContext) -> list[dict[str, Any]]:
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

    def _fx(self) -> Mapping[str, Decimal]:
        """The FX table of the snapshot in use (the configured constants before the first);
        the buyer pool follows it when a snapshot brings a new one. No Redis read."""
        index = self.store.index
        header = index.header if index is not None else None
        fx = header.fx if header is not None and header.fx else self.config.fx
        if fx is not self._fx_in_use:
            self._fx_in_use = fx
            self.pool.set_fx(fx)
        return fx

    async def _openrtb(
        self, scope: Scope, receive: Receive, send: Send, request_id: str, ours: str
    ) -> None:
        body = await self.bodies.read(receive)
        now = time.time()
        fx = self._fx()
        try:
            request = openrtb.decode_bid_request(body)
            ctx = openrtb.to_context(
                request,
                request_id=ours,
                now=now,
                currency=self.config.currency,
                fx=fx,
                sec_gpc=header(scope, b"sec-gpc"),
                placement_key=query_params(scope).get("placement"),
                explain=_explain_asked(scope),
            )
        except openrtb.OpenRtbError as exc:
            raise HttpError(400, "invalid_request", str(exc)) from exc
        except UnicodeDecodeError as exc:
            raise _bad_utf8(exc) from exc
        # The exchange's BidRequest.id is what its logs know the auction by.
        ctx.correlation_id = correlation_id(request.id) or (
            request_id if request_id != ours else ""
        )
        headers = [(b"x-openrtb-version", b"2.6")]
        reply_currency = self._reply_currency(ctx, fx)
        if reply_currency is None:
            await respond(send, 204, b"", request_id, [*headers, (b"x-no-bid-reason", b"cur")])
            return
        try:
            placement, outcome = await self._decide(ctx, scope)
        except NoAd as no_ad:
            reason = [(b"x-no-bid-reason", f"{no_ad.nbr}:{no_ad.reason}".encode())]
            await respond(send, 204, b"", request_id, headers + reason)
            return
        rate = fx[reply_currency]
        served = self.renderer.render_all(ctx, placement, outcome, reply_currency, rate)
        if not served:
            await respond(send, 204, b"", request_id, headers)
            return
        bids = [self.renderer.openrtb_bid(s, rate) for s in served]
        if ctx.pods:
            bids = pod_bids(served, bids)
        response = openrtb.encode_bid_response(
            request_id=request.id, bids=bids, currency=reply_currency, bidid=ctx.request_id
        )
        await respond(send, 200, response, request_id, [JSON, NO_STORE, *headers])

    async def _vast(self, scope: Scope, send: Send, request_id: str, ours: str) -> None:
        query = query_params(scope)
        try:
            ctx = vast_context(query, ours, scope)
        except ValueError as exc:
            raise HttpError(400, "invalid_request", str(exc)) from exc
        if request_id != ours:
            ctx.correlation_id = request_id
        try:
            placement, outcome = await self._decide(ctx, scope)
            served = self.renderer.render_all(ctx, placement, outcome)
        except NoAd:
            served = []
        if ctx.pods:
            body = pod_vast([s.markup for s in served]) if served else EMPTY_VAST
        else:
            body = served[0].markup.encode() if served else EMPTY_VAST
        await respond(send, 200, body, request_id, [XML, NO_STORE])

    def _reply_currency(self, ctx: AdContext, fx: Mapping[str, Decimal]) -> str | None:
        if not ctx.cur or self.config.currency in ctx.cur:
            return self.config.currency
        return next((c for c in ctx.cur if c in fx), None)

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
        self.enricher.enrich(ctx, all_headers(scope))
        ctx.privacy = apply_gdpr_by_geography(
            ctx.privacy, ctx.geo.country, self.config.gdpr_countries
        )
        if ctx.device.is_crawler:
            self._emit_no_ad(placement, ctx, "crawler", None)
            raise NoAd("crawler", openrtb.NBR_KNOWN_SPIDER)
        rules = self.ivt.rules
        address = ctx.device.ip or ctx.device.ipv6 or self._client_ip(scope)
        ctx.network = truncate_ip(address) or ""
        if rules.enabled and address and address in self.ivt.datacenter:
            ctx.ivt = DATACENTER
            if rules.datacenter_action == "no_ad":
                self._emit_no_ad(placement, ctx, DATACENTER, None)
                raise NoAd(DATACENTER, openrtb.NBR_PROXY)
        permissions = evaluate(ctx.privacy, self.config.gvl_vendor_id)
        ctx.permissions = permissions
        if not permissions.serve:
            self._emit_no_ad(placement, ctx, permissions.reason, None)
            raise NoAd(permissions.reason, openrtb.NBR_UNKNOWN)

        self._fx()  # the buyer pool converts bids with the snapshot's table
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
        # Test traffic (test = 1) is never charged: see `_record`.
        reservations = None if ctx.test else self._charge_wins(outcome, int(ctx.now))
        if reservations is not None:
            await self._settle(outcome, reservations)
        self._record(placement, ctx, outcome, user, external, index.line_items)
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
        # A filled slot's "req" carries its decision's id (the one its tracking URLs sign,
        # `serving.render`), the join key of its impressions and clicks in the telemetry.
        won = {d.imp.id: (n, d) for n, d in enumerate(outcome.decisions)}
        events: list[Event] = []
        g = geo_device(ctx.geo.country, ctx.device.devicetype)
        for imp in ctx.imps:
            n, d = won.get(imp.id, (0, None))
            events.append(
                _req_event(d, ts, pl, f"{rid}-{n}", ctx, self.config.telemetry_candidates)
                if d is not None
                else Event(t="req", ts=ts, pl=pl, d=rid, dr=ctx.source, g=g)
            )
        if len(won) < len(outcome.decisions):
            # An ad pod: its ads after the first on one imp, one "req" each like a single ad.
            for n, d in enumerate(outcome.decisions):
                if won[d.imp.id][1] is not d:
                    events.append(
                        _req_event(d, ts, pl, f"{rid}-{n}", ctx, self.config.telemetry_candidates)
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

    def _emit_no_ad(
        self, placement: PlacementSnap, ctx: AdContext, reason: str, user: str | None
    ) -> None:
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

    # -- user sync (serving.sync) --------------------------------------------------------

    async def _sync(self, scope: Scope, send: Send, request_id: str) -> None:
        index = self.store.index
        if index is None:
            raise HttpError(503, "not_ready", "no campaign snapshot has been published yet")
        query = query_params(scope)
        buyer = _syncing_buyer(index, query.get("buyer", ""))
        try:
            ctx = self.user_sync.context(query, scope, request_id)
        except ValueError as exc:
            raise HttpError(400, "invalid_request", str(exc)) from exc
        self.enricher.enrich(ctx, all_headers(scope))
        ctx.privacy = apply_gdpr_by_geography(
            ctx.privacy, ctx.geo.country, self.config.gdpr_countries
        )
        permissions = evaluate(ctx.privacy, self.config.gvl_vendor_id)
        refusal = permissions.sync_refusal(buyer.gvl_vendor_id, buyer.gvl)
        await self.user_sync.start(ctx, buyer, refusal, send, request_id)

    async def _sync_return(self, scope: Scope, send: Send, request_id: str) -> None:
        index = self.store.index
        if index is None:
            raise HttpError(503, "not_ready", "no campaign snapshot has been published yet")
        buyers = {b.id: b for b in index.buyers}
        await self.user_sync.finish(query_params(scope), buyers, send, request_id)

    # -- tracking -----------------------------------------------------------------------

    async def _impression(self, text: str, scope: Scope, send: Send, request_id: str) -> None:
        token = self._verify(text, "imp")
        if not self._fresh(token):
            raise HttpError(410, "expired", "the impression token has expired")
        # A CPM impression was charged at its win: recording it clears the pending charge.
        judged = await self._record_billable(token, "imp", scope, cost=0, pending=token.cpm_micros)
        # The buyer is told of a billable impression only (its billing notice).
        if judged == "" and token.notice:
            self.pool.notify(token.notice, {}, buyer_id=token.buyer_id)
        await respond(send, 200, GIF, request_id, [(b"content-type", b"image/gif"), NO_STORE])

    async def _click(self, text: str, scope: Scope, send: Send, request_id: str) -> None:
        # The decision's token ("clk" tokens were issued before one token served all URLs).
        token = self._verify(text, "imp", "clk")
        if not token.landing_url:  # external demand's clicks go through the buyer's markup
            raise HttpError(400, "invalid_token", "the token has no click destination")
        # A late click still takes the user to the advertiser; it is just not counted.
        if self._fresh(token):
            # CPC is charged on the click (micros per click, in billionths like all spend).
            await self._record_billable(
                token, "clk", scope, cost=token.click_micros * 1000, pending=0
            )
        # `{CLICK_ID}` in the landing URL becomes a signed click id the advertiser's site keeps
        # for its conversion pixel or postback (post-click attribution, serving.conversions).
        landing = self.click_ids.landing(token.landing_url, _click_of(token))
        await respond(send, 302, b"", request_id, [(b"location", landing.encode()), NO_STORE])

    async def _conversion(self, scope: Scope, send: Send, request_id: str) -> None:
        """The conversion pixel: checked, then one `conv` event with the next batch (not
        waited on); attribution happens at ingestion (reporting.conversions)."""
        query = query_params(scope)
        advertiser = query.get("adv", "")
        if not advertiser.isdigit() or len(advertiser) > 12 or not int(advertiser):
            raise HttpError(400, "invalid_request", "`adv`: the advertiser id is required")
        adv = int(advertiser)
        try:
            conversion = parse_conversion(query.get, PIXEL_FIELDS, self.click_ids, adv)
            ctx = pixel_context(query, scope, request_id, "conv")
        except ValueError as exc:
            raise HttpError(400, "invalid_request", str(exc)) from exc
        self.enricher.enrich(ctx, all_headers(scope))
        ctx.privacy = apply_gdpr_by_geography(
            ctx.privacy, ctx.geo.country, self.config.gdpr_countries
        )
        permissions = evaluate(ctx.privacy, self.config.gvl_vendor_id)
        status = b"recorded"
        # Attribution measures ad performance (TCF purpose 7); the post-view path also needs
        # an id on the device (purpose 1). Without 7 nothing is recorded.
        if permissions.measure:
            raw = raw_user_id(ctx) if permissions.use_ids else None
            pseudonym = self.pseudonyms.pseudonym(raw, conversion.ts_ms / 1000) if raw else ""
            if not self.sink.accepting:
                raise _events_unavailable()
            self.sink.emit([conversion_event(conversion, adv, pseudonym, "pixel")])
        else:
            status = b"not_recorded:no_measurement_consent"
        headers = [(b"content-type", b"image/gif"), NO_STORE, (b"x-conversion", status)]
        await respond(send, 200, GIF, request_id, headers)

    async def _creative_event(
        self, text: str, kind: TokenKind, scope: Scope, send: Send, request_id: str
    ) -> None:
        """A VAST error or tracking event, or an HTML render failure: counted, not billed."""
        token = self._verify(text, "imp")  # the impression's token, see fill
        query = query_params(scope)
        # A player event's name must be one we count (else a 400).
        detail = (query.get("code") or "") if kind == "err" else event_name(query.get("e"))
        # Player and viewability events measure the ad (TCF purpose 7): not recorded for a
        # decision made without it. Errors are kept (fixing errors is a special purpose).
        measured = kind != "evt" or token.measure
        if measured and self._fresh(token) and len(detail) <= 32:
            if not self.sink.accepting:
                raise _events_unavailable()
            event = Event(
                t=kind, ts=int(time.time() * 1000), pl=token.placement_id,
                li=token.line_item_id, cp=token.campaign_id, adv=token.advertiser_id,
                cr=token.creative_id, d=token.decision_id, r=detail, dr=token.door,
            )  # fmt: skip
            if kind == "evt" and self.screen.stuffed(token, detail, query):
                self.screen.take_back(self.sink, self.store, token, event)
            elif kind == "evt":
                record_event(self.sink, self.keys, event, self.config.token_ttl + 3600)
            else:
                self.sink.emit([event])
        await respond(send, 200, GIF, request_id, [(b"content-type", b"image/gif"), NO_STORE])

    async def _health(self, send: Send, request_id: str) -> None:
        version = self.store.version
        status = 200 if version else 503
        body = _json.encode({"status": "ok" if version else "no_snapshot", "snapshot": version})
        await respond(send, status, body, request_id, [JSON, NO_STORE])

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

    def _client_ip(self, scope: Scope) -> str | None:
        """The address of whoever sent this request: our proxy's header when configured."""
        if self._client_ip_header:
            return header(scope, self._client_ip_header)
        client = scope.get("client")
        return client[0] if client else None

    async def _record_billable(
        self, token: TrackingToken, kind: TokenKind, scope: Scope, cost: int, pending: int
    ) -> str | None:
        """Record an impression or click once per decision (the rollups bill from these
        events); `cost` is charged now, `pending` was charged at the win. None for a repeat,
        "" when billed, else why it is invalid (recorded with its reason, not billed)."""
        now = spend_clock.now()
        network = truncate_ip(self._client_ip(scope)) or ""
        reason = self.screen.general_reason(scope, kind)
        # A pre-fetch is recorded apart from the click: the user's own click still counts.
        kind_key = "clkpf" if reason == PREFETCH else kind
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
            cpm=0 if token.test else token.cpm_micros if kind == "imp" else cost,
            d=token.decision_id,
            b=token.buyer_id,
            tt=1 if token.test else 0,
            dr=token.door,
            # Flagged for review, not refused: phones move between networks.
            fl=NETWORK_CHANGED if kind == "imp" and token.net and network != token.net else "",
            # Whose event it was (pseudonymous, truncated), for refunds and access requests.
            u=token.u,
            ip=network,
            g=token.g,
        )
        if token.test:  # recorded (once) for the test counts, never charged
            cost = pending = 0
        judge = self.screen.judgement(token, kind, reason, network)
        try:
            judged = await self.store.spend.record_billable(
                self.sink,
                event,
                issued_at=token.issued_at,
                cost=cost if token.campaign_id else 0,
                pending=pending if token.campaign_id else 0,
                dedupe_key=self.keys.seen(kind_key, token.decision_id, token.campaign_id),
                dedupe_ttl=self.config.token_ttl + 3600,
                judge=judge,
            )
        except (ConnectionError, TimeoutError) as exc:
            # Not recorded, so not acknowledged: the pixel or click is to be sent again (the
            # decision id de-duplicates it if Redis had recorded it after all).
            raise _events_unavailable() from exc
        if judged and kind == "imp":
            self.screen.uncount_frequency(self.sink, self.store.index, token)
        return judged


def _req_event(
    d: Decision, ts: int, pl: int, rid: str, ctx: AdContext, candidates: int = 0
) -> Event:
    x = slot_features(ctx, d, candidates) if candidates else ""
    g = geo_device(ctx.geo.country, ctx.device.devicetype)
    li = d.line_item
    if li is not None and d.creative is not None:
        return Event(
            t="req", ts=ts, pl=pl, li=li.id, cp=li.campaign_id,
            adv=li.advertiser_id, cr=d.creative.id, d=rid, x=x, dr=ctx.source, g=g,
        )  # fmt: skip
    return Event(t="req", ts=ts, pl=pl, d=rid, b=d.external.buyer_id, x=x, dr=ctx.source, g=g)


def _click_of(token: TrackingToken) -> ClickId:
    return ClickId(
        token.decision_id, token.placement_id, token.line_item_id, token.campaign_id,
        token.advertiser_id, token.creative_id, int(time.time()),
    )  # fmt: skip


def _events_unavailable() -> HttpError:
    return HttpError(
        503,
        "events_unavailable",
        "the event cannot be recorded right now; send it again later",
        headers=[RETRY_AFTER],
    )


def _bad_utf8(exc: UnicodeDecodeError) -> HttpError:
    """msgspec checks UTF-8 only when it decodes a string: name the byte it choked on."""
    byte = exc.object[exc.start : exc.start + 1].hex() if exc.object else "?"
    return HttpError(
        400, "malformed_json", f"a JSON string is not valid UTF-8 (byte 0x{byte}: {exc.reason})"
    )


def _syncing_buyer(index: Index, text: str) -> BuyerSnap:
    buyer_id = int(text) if text.isdigit() and len(text) < 10 else None
    buyer = next((b for b in index.buyers if b.id == buyer_id), None)
    if buyer is None or not buyer.sync_url:
        raise HttpError(400, "invalid_request", f"`buyer` {text[:20]!r} is not a buyer that syncs")
    return buyer


def _staff(scope: Scope, index: Index) -> bool:
    auth = header(scope, b"authorization") or ""
    scheme, _, key = auth.partition(" ")
    if scheme.lower() != "bearer" or not key:
        return False
    return hashlib.sha256(key.strip().encode()).hexdigest() in index.staff_token_hashes


def _explain_asked(scope: Scope) -> bool:
    return query_params(scope).get("explain") == "1"
