"""The lean ASGI serving app: ad requests (first-party, OpenRTB 2.6, VAST) and tracking.

It does not pass through Django's request machinery and never touches the ORM: it decides
on the in-memory snapshot and talks to Redis only in batches (see `serving.events`). This
module holds the ASGI entry, the lifespan and background tasks, routing and the ad doors;
its settings are `serving.config`'s.

The request path (DESIGN.md):
1. front door: body limit (413), schema (400 naming the field), placement key (401), rate
   limit per key (429), request id;
2. orchestrator (`serving.decision`): enrichment (geo, device, crawlers), the consent
   policy, a pseudonymous user id where consent allows;
3-5. candidates from the index, external buyers in parallel, the auction (`serving.engine`);
6. rendering with signed tracking URLs (`serving.render`);
7. one batch of events and counters, never waited on (`serving.recording`).
Impressions, clicks, conversions and player events come back through `serving.tracking`.
"""

import asyncio
import logging
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from compliance.policy import apply_gdpr_by_geography, evaluate
from compliance.pseudonym import Pseudonymiser
from serving import openrtb
from serving.buyers.pool import BuyerPool
from serving.cluster import redis_client
from serving.config import ServingConfig
from serving.context import AdContext
from serving.conversions import ClickIds
from serving.decision import Decider, NoAd
from serving.enrich import Enricher
from serving.events import KNOWN_PARTITIONS, EventSink
from serving.http import (
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
from serving.ids import correlation_id, new_decision_id
from serving.index import Index
from serving.ivt.events import EventScreen
from serving.ivt.judge import REFRESH_SECONDS as IVT_REFRESH_SECONDS
from serving.ivt.judge import IvtState
from serving.keys import RedisKeys, day_of
from serving.limits.fleet import FleetLimits
from serving.limits.ratelimit import RateLimiter
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
from serving.pods.response import pod_bids
from serving.pods.vast import pod_vast
from serving.recording import RequestRecorder
from serving.render import Renderer, v1_decision
from serving.request_keys import DRAIN_SECONDS, RequestKeyDrain
from serving.schema import RequestError, ad_request_decoder, to_context, vast_context
from serving.snapshot import BuyerSnap
from serving.store import SnapshotStore
from serving.sync import UserSync
from serving.tokens import TokenSigner, TrackingToken
from serving.tracking import RETRY_AFTER, TrackingDoors

log = logging.getLogger(__name__)

EMPTY_VAST = b'<VAST version="4.2"/>'

_json = msgspec.json.Encoder(decimal_format="number")


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
        self.recorder = RequestRecorder(
            self.sink, self.keys, self.pool, config.telemetry_candidates
        )
        self.decider = Decider(
            config, store=self.store, sink=self.sink, keys=self.keys, limiter=self.limiter,
            enricher=self.enricher, ivt=self.ivt, pool=self.pool, pseudonyms=self.pseudonyms,
            recorder=self.recorder, client_ip=self._client_ip,
        )  # fmt: skip
        self.tracking = TrackingDoors(
            config, signer=self.signer, click_ids=self.click_ids, screen=self.screen,
            store=self.store, sink=self.sink, keys=self.keys, pool=self.pool,
            enricher=self.enricher, pseudonyms=self.pseudonyms, client_ip=self._client_ip,
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
            await self.tracking.impression(path.removeprefix("/v1/imp/"), scope, send, request_id)
        elif path.startswith("/v1/click/") and method in ("GET", "HEAD"):
            await self.tracking.click(path.removeprefix("/v1/click/"), scope, send, request_id)
        elif path.startswith("/v1/err/") and method in ("GET", "HEAD", "POST"):
            await self.tracking.creative_event(
                path.removeprefix("/v1/err/"), "err", scope, send, request_id
            )
        elif path.startswith("/v1/ev/") and method in ("GET", "HEAD", "POST"):
            await self.tracking.creative_event(
                path.removeprefix("/v1/ev/"), "evt", scope, send, request_id
            )
        elif path == "/v1/conv" and method in ("GET", "HEAD"):
            await self.tracking.conversion(scope, send, request_id)
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
            placement, outcome = await self.decider.decide(ctx, scope)
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
            payload["buyers"] = self.decider.explain_buyers(ctx)
        await respond(send, 200, _json.encode(payload), request_id, [JSON, NO_STORE])

    async def _openrtb(
        self, scope: Scope, receive: Receive, send: Send, request_id: str, ours: str
    ) -> None:
        body = await self.bodies.read(receive)
        now = time.time()
        fx = self.decider.fx()
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
            placement, outcome = await self.decider.decide(ctx, scope)
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
            placement, outcome = await self.decider.decide(ctx, scope)
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

    async def _health(self, send: Send, request_id: str) -> None:
        version = self.store.version
        status = 200 if version else 503
        body = _json.encode({"status": "ok" if version else "no_snapshot", "snapshot": version})
        await respond(send, status, body, request_id, [JSON, NO_STORE])

    # -- helpers ------------------------------------------------------------------------

    def sign(self, token: TrackingToken) -> str:
        return self.signer.sign(token)

    def _client_ip(self, scope: Scope) -> str | None:
        """The address of whoever sent this request: our proxy's header when configured."""
        if self._client_ip_header:
            return header(scope, self._client_ip_header)
        client = scope.get("client")
        return client[0] if client else None


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


def _explain_asked(scope: Scope) -> bool:
    return query_params(scope).get("explain") == "1"
