"""External OpenRTB buyers at serving time: whom to call, calling them in parallel inside the
request's deadline, and which of their bids may enter the auction.

A `BuyerPool` lives for the life of a serving process, on its event loop. It owns one
aiohttp session, so connections to each buyer are kept alive and reused across requests
(a TLS handshake per request would eat most of a 150 ms budget), and the process-local state
that makes calling buyers safe at volume:

- the buyer's QPS cap: with a fleet (`serving.limits.fleet`, what a serving app passes) it
  holds across every serving process, from tokens each process claims ahead through the
  event sink's batches; without one (a pool on its own) it is a token bucket per process
  (`serving.limits.local`);
- a circuit breaker per buyer (`serving.limits.local`). After `breaker_failures` consecutive
  failures (a timeout, a connection error, an HTTP 5xx or an unreadable answer) the circuit
  opens and the buyer is not called. Once `breaker_cooldown` seconds have passed, one probe
  request is let through (half-open) while other requests still skip the buyer; its success
  closes the circuit, its failure opens it for another cooldown. Any answer that is not a
  failure (a bid, a no-bid, an invalid bid, a 4xx) counts as a success: the buyer is up,
  whatever it thinks of us. With a fleet, every call's verdict is also shared, and the
  circuit opens for the whole fleet when its error rate crosses the threshold;
- outcome counters per (buyer, reason) and latency sums, flushed to Redis in one pipeline
  about once a second (`flush_stats`), never per request; and a latency histogram per buyer
  since the process started, published with the process's figures (`serving.metrics`);
- win, billing and loss notices, fired without waiting and bounded in number.

The decision to call is the consent policy's (`Permissions.for_buyer`, with the buyer's own
GVL vendor id), then COPPA, then the time left, the circuit and the QPS cap. Every bid is
checked against the request before it may compete (`serving.buyer_bids`); a bid that fails
is dropped and counted with its reason. Prices are converted into the platform currency with
the pool's FX table (`fx[code]` = platform units one unit of `code` is worth), as
`LineItemSnap.fx_rate` is.

Nothing here touches Django or the database.
"""

import asyncio
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_CEILING, Decimal
from typing import Any

import aiohttp
from redis.asyncio import Redis
from redis.exceptions import RedisError

from compliance.policy import BuyerPermission
from serving.buyer_bids import (
    LOSS_CODES,
    MICROS,
    TIMEOUT,
    WRONG_CURRENCY,
    WRONG_ID,
    Blocks,
    ExternalBid,
    LostBid,
    bid_problem,
    external_bid,
    loss_code,
)
from serving.context import AdContext, Imp, VideoSpec
from serving.keys import RedisKeys
from serving.latency import LatencyCounts
from serving.limits.fleet import FleetLimits
from serving.limits.local import CircuitBreaker, TokenBucket
from serving.macros import substitute
from serving.metrics import BREAKER_OPEN, BUYER_BUCKETS, Histogram
from serving.netguard import FetchPolicy, GuardedResolver, RefusedAddress
from serving.openrtb import (
    LOSS_EXPIRED,
    BidResponse,
    OpenRtbError,
    build_outbound_request,
    decode_bid_response,
)
from serving.snapshot import BuyerSnap

log = logging.getLogger(__name__)

# Kept back from the deadline for decoding the answers and running the auction.
SAFETY_MARGIN = 0.005
# Below this much time, a call could only end in a timeout: the buyer is skipped instead.
MIN_CALL_TIME = 0.005
# An answer larger than this is not a bid response anyone meant to send.
MAX_RESPONSE_BYTES = 1 << 20
NOTICE_TIMEOUT = 2.0
# How long an answer that missed the round is still read, for its loss notices (2, expired),
# and how many such answers a process follows at once.
LATE_GRACE = 1.0
MAX_LATE_IN_FLIGHT = 64
# How long `close` lets notices in flight finish.
CLOSE_GRACE = 1.0
# Buyer counters are kept a little over a month for ad ops and reports.
BUYER_STATS_TTL = 35 * 86400
HEADERS = {"content-type": "application/json", "x-openrtb-version": "2.6"}

# Outcome reasons, as counted per buyer (Redis fields "{buyer_id}:{reason}").
REQUEST = "request"
BID = "bid"
# Not called:
CONSENT = "consent"
COPPA = "coppa"
NO_TIME = "no_time"
NO_FX_RATE = "no_fx_rate"  # the buyer's currency cannot be converted
CIRCUIT_OPEN = "circuit_open"
QPS_CAP = "qps_cap"
BUILD_ERROR = "build_error"  # our side failed to write the request
# The answer as a whole:
ERROR = "error"
NO_BID = "no_bid"
INVALID_JSON = "invalid_json"
TOO_LARGE = "too_large"
# Notices:
NOTICE_DROPPED = "notice_dropped"
NOTICE_ERROR = "notice_error"
MARKUP_ERROR = "markup_error"  # fetching a nurl-only bid's markup failed
REFUSED_ADDRESS = "refused_address"  # a URL at an address we may not fetch (serving.netguard)

LATENCY_SUM = "latency_ms_sum"
LATENCY_COUNT = "latency_count"

_FAILURES = frozenset({TIMEOUT, ERROR, INVALID_JSON})


def _is_failure(reason: str) -> bool:
    """What opens the circuit: the buyer is down or broken, not merely unwilling."""
    return reason in _FAILURES or reason.startswith("http_5")


@dataclass(slots=True)
class BuyerOutcome:
    """What happened with one buyer in one round, for `?explain=1`."""

    buyer_id: int
    buyer_name: str
    outcome: str  # "bid", or the reason it was skipped or its answer dropped
    called: bool = False
    latency_ms: float | None = None  # set when an HTTP answer arrived
    status: int | None = None
    nbr: int | None = None  # the buyer's own no-bid reason, when it gave one
    detail: str = ""
    bids: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # per-bid drop reasons

    def as_dict(self) -> dict[str, Any]:
        return {
            "buyer": self.buyer_id,
            "name": self.buyer_name,
            "outcome": self.outcome,
            "called": self.called,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 2),
            "status": self.status,
            "nbr": self.nbr,
            "detail": self.detail,
            "bids": self.bids,
            "dropped": dict(self.dropped),
        }


@dataclass(slots=True)
class BuyerRound:
    """The valid bids of one round and what every buyer did."""

    bids: list[ExternalBid] = field(default_factory=list)
    outcomes: list[BuyerOutcome] = field(default_factory=list)
    # Priced bids dropped before the auction, with their loss reasons (already notified).
    lost: list[LostBid] = field(default_factory=list)

    def bids_for(self, imp_id: str) -> list[ExternalBid]:
        """The valid bids on one imp, highest price first."""
        return sorted((b for b in self.bids if b.imp_id == imp_id), key=lambda b: -b.price)

    def outcome(self, buyer_id: int) -> BuyerOutcome | None:
        return next((o for o in self.outcomes if o.buyer_id == buyer_id), None)

    def explain(self) -> list[dict[str, Any]]:
        return [o.as_dict() for o in self.outcomes]


@dataclass(slots=True)
class _BuyerState:
    breaker: CircuitBreaker
    bucket: TokenBucket | None = None


@dataclass(slots=True)
class _Call:
    """One outbound call being made in a round."""

    buyer: BuyerSnap
    outcome: BuyerOutcome
    body: bytes
    timeout: float


@dataclass(slots=True)
class _Answer:
    """The verdict on one call: its outcome and, when it answered, its valid bids."""

    reason: str
    status: int | None = None
    latency_ms: float | None = None
    bids: list[ExternalBid] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    nbr: int | None = None
    lost: list[LostBid] = field(default_factory=list)


def parse_buyer_stats(raw: Mapping[Any, Any]) -> dict[int, dict[str, int]]:
    """A `buyer_stats` hash read back from Redis: buyer id → reason → count."""
    parsed: dict[int, dict[str, int]] = defaultdict(dict)
    for name, value in raw.items():
        text = name.decode() if isinstance(name, bytes) else str(name)
        buyer, _, reason = text.partition(":")
        if buyer.isdigit() and reason:
            parsed[int(buyer)][reason] = int(value)
    return dict(parsed)


class BuyerPool:
    """Calls external buyers for one serving process; see the module docstring."""

    def __init__(
        self,
        *,
        currency: str,
        fx: Mapping[str, Decimal],
        breaker_failures: int = 5,
        breaker_cooldown: float = 5.0,
        max_connections_per_buyer: int = 32,
        max_notices_in_flight: int = 256,
        fetch_policy: FetchPolicy | None = None,
        fleet: FleetLimits | None = None,
    ) -> None:
        # Public addresses only unless allowed: every URL fetched here is a buyer's choice.
        self.fetch_policy = fetch_policy or FetchPolicy()
        self.currency = currency.upper()
        self.fx: Mapping[str, Decimal] = dict(fx)
        self.fleet = fleet
        self.breaker_failures = breaker_failures
        self.breaker_cooldown = breaker_cooldown
        self.max_connections_per_buyer = max_connections_per_buyer
        self.max_notices_in_flight = max_notices_in_flight
        self._session: aiohttp.ClientSession | None = None
        self._states: dict[int, _BuyerState] = {}
        self._counts: Counter[tuple[int, str]] = Counter()
        self._latency_sum: defaultdict[int, float] = defaultdict(float)
        self._latency_count: Counter[int] = Counter()
        # buyer id -> seconds to an answer (timeouts are counted, not timed), never reset.
        self.latency: dict[int, Histogram] = {}
        # Response-time bucket counts per buyer for the hourly reports (`serving.latency`).
        self.latency_counts = LatencyCounts()
        self._notices: set[asyncio.Task[None]] = set()
        self._rounds: set[asyncio.Task[_Answer]] = set()
        self._late: set[asyncio.Task[tuple[int, bytes]]] = set()

    # -- configuration ------------------------------------------------------------------

    def set_fx(self, fx: Mapping[str, Decimal]) -> None:
        """Replace the FX table (rates are refreshed outside the request path)."""
        self.fx = dict(fx)

    def rate(self, currency: str) -> Decimal | None:
        """Platform units one unit of `currency` is worth; None when it cannot be converted."""
        code = currency.upper()
        if code == self.currency:
            return Decimal(1)
        rate = self.fx.get(code)
        return rate if rate is not None and rate.is_finite() and rate > 0 else None

    def breaker(self, buyer_id: int) -> CircuitBreaker:
        return self._state(buyer_id).breaker

    def circuit_states(self) -> dict[int, int]:
        """Each buyer's circuit now (`CircuitBreaker.state`), for the buyers called so far."""
        now, wall = time.monotonic(), time.time()
        fleet = self.fleet.breakers if self.fleet is not None else None
        return {
            buyer_id: BREAKER_OPEN
            if fleet is not None and fleet.is_open(buyer_id, wall)
            else s.breaker.state(now)
            for buyer_id, s in self._states.items()
        }

    def _state(self, buyer_id: int) -> _BuyerState:
        state = self._states.get(buyer_id)
        if state is None:
            state = _BuyerState(CircuitBreaker(self.breaker_failures, self.breaker_cooldown))
            self._states[buyer_id] = state
        return state

    def _bucket(self, buyer: BuyerSnap, state: _BuyerState, now: float) -> TokenBucket | None:
        """The buyer's QPS bucket, following its cap as snapshots change it."""
        if not buyer.qps_cap:
            state.bucket = None
        elif state.bucket is None or state.bucket.rate != buyer.qps_cap:
            # A new cap starts with a full second's worth.
            state.bucket = TokenBucket(buyer.qps_cap, float(buyer.qps_cap), now)
        return state.bucket

    def _client(self) -> aiohttp.ClientSession:
        # Created inside the running loop, on first use: aiohttp binds a session to its loop.
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=0,  # no global cap: each buyer has its own below
                limit_per_host=self.max_connections_per_buyer,
                ttl_dns_cache=300,
                keepalive_timeout=30,
                resolver=GuardedResolver(self.fetch_policy),
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                # Cookies a buyer sets belong to one user; never replay them to the next.
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None),  # each call sets its own
            )
        return self._session

    # -- a round ------------------------------------------------------------------------

    async def solicit(
        self,
        ctx: AdContext,
        buyers: Sequence[BuyerSnap],
        imps: Sequence[Imp],
        deadline: float,
    ) -> BuyerRound:
        """Ask every eligible buyer for bids on `imps`, in parallel, and return by `deadline`
        (a `time.monotonic()` instant) with the valid bids and each buyer's outcome."""
        result = BuyerRound()
        if not buyers or not imps:
            return result
        priced: dict[str, Sequence[Imp]] = {}  # imps with floors in each buyer currency
        calls = [
            call
            for buyer in buyers
            if (call := self._prepare(ctx, buyer, imps, priced, deadline, result)) is not None
        ]
        if not calls:
            return result
        blocks = Blocks.of(ctx, imps)
        tasks = {asyncio.create_task(self._call(call, ctx, blocks)): call for call in calls}
        try:
            await asyncio.wait(tasks, timeout=max(0.0, deadline - time.monotonic()))
        except asyncio.CancelledError:
            self._abandon(tasks)
            raise
        for task, call in tasks.items():
            # Still running at the deadline: a timeout, whatever it was waiting on.
            self._settle(result, call, _answer_of(task) if task.done() else _Answer(TIMEOUT))
            self._cancel(task)
        # Bids that could never win are told so now; the auction's losers after it.
        self.notify_losses(ctx, result.lost)
        return result

    def notify_losses(self, ctx: AdContext, lost: Iterable[LostBid]) -> None:
        """A loss notice (lurl) to every lost bid that has one: once, never waited on."""
        imp_ts = int(ctx.now * 1000)
        auction_id = auction_id_of(ctx)
        for item in lost:
            bid = item.bid
            if bid.lurl:
                values = bid.macros(
                    auction_id=auction_id, imp_ts=imp_ts, loss=item.loss,
                    min_to_win=item.min_to_win,
                )  # fmt: skip
                self.notify(bid.lurl, values, buyer_id=bid.buyer_id)

    def _abandon(self, tasks: Mapping["asyncio.Task[_Answer]", _Call]) -> None:
        """The ad request itself was cancelled: keep the verdicts that exist, judge no one
        on the calls cut short."""
        for task, call in tasks.items():
            if task.done():
                self._settle(BuyerRound(), call, _answer_of(task))
            else:
                self._state(call.buyer.id).breaker.release()
                self._cancel(task)

    def _cancel(self, task: "asyncio.Task[_Answer]") -> None:
        if not task.done():
            task.cancel()
            # Keep a reference until it has unwound, or the loop may drop it mid-way.
            self._rounds.add(task)
            task.add_done_callback(self._rounds.discard)

    def _prepare(
        self,
        ctx: AdContext,
        buyer: BuyerSnap,
        imps: Sequence[Imp],
        priced: dict[str, Sequence[Imp]],
        deadline: float,
        result: BuyerRound,
    ) -> _Call | None:
        """The call to make to one buyer, or None (outcome recorded) when it is skipped."""
        outcome = BuyerOutcome(buyer.id, buyer.name, outcome="")
        result.outcomes.append(outcome)
        now = time.monotonic()
        timeout = min(buyer.timeout_ms / 1000, deadline - now - SAFETY_MARGIN)
        permission, reason, detail = self._eligibility(ctx, buyer, timeout, now)
        if permission is None or ctx.permissions is None:
            outcome.outcome, outcome.detail = reason, detail
            self._count(buyer.id, reason)
            return None
        currency = buyer.currency.upper()
        if currency not in priced:
            priced[currency] = self._imps_in(imps, currency)
        try:
            body = build_outbound_request(
                ctx,
                imps=priced[currency],
                permission=permission,
                tmax_ms=max(1, int(timeout * 1000)),
                currency=currency,
                request_id=auction_id_of(ctx),
                buyer_uid=ctx.buyer_uids.get(buyer.id),
            )
        except Exception:  # a bug of ours must not take the ad request down with it
            log.exception("could not build the bid request for buyer %s", buyer.id)
            outcome.outcome = BUILD_ERROR
            self._count(buyer.id, BUILD_ERROR)
            return None
        self._state(buyer.id).breaker.start()
        outcome.called = True
        self._count(buyer.id, REQUEST)
        return _Call(buyer, outcome, body, timeout)

    def _imps_in(self, imps: Sequence[Imp], currency: str) -> Sequence[Imp]:
        """The imps with their floors in `currency`, so that the request's `cur` and every
        `bidfloorcur` name the one currency the buyer bids in. Rounded up: a bid at the
        converted floor is worth at least the floor in the platform currency."""
        rate = self.rate(currency)
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

    def _eligibility(
        self, ctx: AdContext, buyer: BuyerSnap, timeout: float, now: float
    ) -> tuple[BuyerPermission | None, str, str]:
        """May this buyer be called now, and with what data? Returns the permission, or the
        reason it is skipped and a detail. Consumes a QPS token when it may be called."""
        if ctx.permissions is None:
            return None, CONSENT, "no_permissions"
        permission = ctx.permissions.for_buyer(buyer.gvl_vendor_id, buyer.gvl)
        if not permission.call:
            return None, CONSENT, permission.reason
        if ctx.privacy.coppa == 1 and not buyer.supports_coppa:
            return None, COPPA, ""
        if self.rate(buyer.currency) is None:  # every bid would be dropped: do not ask
            return None, NO_FX_RATE, buyer.currency
        if timeout < MIN_CALL_TIME:
            return None, NO_TIME, f"{max(timeout, 0) * 1000:.1f} ms left"
        state = self._state(buyer.id)
        if not state.breaker.allows(now):
            return None, CIRCUIT_OPEN, ""
        fleet = self.fleet
        if fleet is None:
            bucket = self._bucket(buyer, state, now)
            if bucket is not None and not bucket.take(now):
                return None, QPS_CAP, ""
            return permission, "", ""
        wall = time.time()
        if fleet.breakers.is_open(buyer.id, wall):
            return None, CIRCUIT_OPEN, "fleet"
        if buyer.qps_cap and not fleet.qps.take(buyer.id, buyer.qps_cap, wall):
            return None, QPS_CAP, ""
        return permission, "", ""

    async def _call(self, call: _Call, ctx: AdContext, blocks: Blocks) -> _Answer:
        """POST the bid request and judge the answer; never raises but for cancellation.

        An answer still on its way at the call's timeout is a timeout for the round, but it
        is read on (up to LATE_GRACE) so that its priced bids get loss notices (2, expired)."""
        started = time.monotonic()
        fetch = asyncio.create_task(self._fetch(call))
        try:
            done, _ = await asyncio.wait({fetch}, timeout=call.timeout)
        except asyncio.CancelledError:
            fetch.cancel()
            raise
        if not done:
            self._follow_late(fetch, call, ctx, blocks)
            return _Answer(TIMEOUT)
        try:
            status, payload = fetch.result()
        except TimeoutError:
            return _Answer(TIMEOUT)
        except _TooLarge:
            return _Answer(TOO_LARGE)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            log.debug("buyer %s: %s", call.buyer.id, exc)
            return _Answer(ERROR)
        latency_ms = (time.monotonic() - started) * 1000
        answer = self._judge(call.buyer, status, payload, auction_id_of(ctx), blocks)
        answer.status, answer.latency_ms = status, latency_ms
        return answer

    async def _fetch(self, call: _Call) -> tuple[int, bytes]:
        self.fetch_policy.check_literal(call.buyer.endpoint)
        async with asyncio.timeout(call.timeout + LATE_GRACE):
            async with self._client().post(
                call.buyer.endpoint, data=call.body, headers=HEADERS, allow_redirects=False
            ) as response:
                return response.status, await _read_limited(response)

    def _follow_late(
        self, fetch: "asyncio.Task[tuple[int, bytes]]", call: _Call, ctx: AdContext, blocks: Blocks
    ) -> None:
        if len(self._late) >= MAX_LATE_IN_FLIGHT:
            fetch.cancel()
            return
        self._late.add(fetch)

        def arrived(task: "asyncio.Task[tuple[int, bytes]]") -> None:
            self._late.discard(task)
            if task.cancelled() or task.exception() is not None:
                return
            status, payload = task.result()
            answer = self._judge(call.buyer, status, payload, auction_id_of(ctx), blocks)
            # The valid ones came too late; the others have their own reason anyway.
            late = [LostBid(bid, LOSS_EXPIRED) for bid in answer.bids]
            self.notify_losses(ctx, [*late, *answer.lost])

        fetch.add_done_callback(arrived)

    def _settle(self, result: BuyerRound, call: _Call, answer: _Answer) -> None:
        """Record one call's verdict: counters, breaker, the round's bids and outcome.

        Bids are counted one by one ("bid" or their drop reason); an answer without any is
        counted once by its reason (no_bid, timeout, http_500...)."""
        buyer, outcome = call.buyer, call.outcome
        outcome.outcome, outcome.status, outcome.nbr = answer.reason, answer.status, answer.nbr
        outcome.latency_ms = answer.latency_ms
        outcome.bids, outcome.dropped = len(answer.bids), dict(answer.dropped)
        for reason, n in answer.dropped.items():
            self._count(buyer.id, reason, n)
        if answer.bids:
            self._count(buyer.id, BID, len(answer.bids))
        elif not answer.dropped:
            self._count(buyer.id, answer.reason)
        if answer.latency_ms is not None:
            self._latency_sum[buyer.id] += answer.latency_ms
            self._latency_count[buyer.id] += 1
            histogram = self.latency.get(buyer.id)
            if histogram is None:
                histogram = self.latency[buyer.id] = Histogram(BUYER_BUCKETS)
            histogram.observe(answer.latency_ms / 1000)
            self.latency_counts.answered(buyer.id, answer.latency_ms)
        elif answer.reason == TIMEOUT:
            self.latency_counts.timed_out(buyer.id)
        failed = _is_failure(answer.reason)
        self._state(buyer.id).breaker.record(failed, time.monotonic())
        if self.fleet is not None:
            self.fleet.breakers.record(buyer.id, failed)
        result.bids.extend(answer.bids)
        result.lost.extend(answer.lost)

    # -- judging an answer --------------------------------------------------------------

    def _judge(
        self, buyer: BuyerSnap, status: int, payload: bytes, request_id: str, blocks: Blocks
    ) -> _Answer:
        if status == 204:
            return _Answer(NO_BID)
        if status != 200:
            return _Answer(f"http_{status}")
        if not payload.strip():  # an empty 200 is a no-bid too, if an odd one
            return _Answer(NO_BID)
        try:
            response = decode_bid_response(payload)
        except OpenRtbError:
            return _Answer(INVALID_JSON)
        if not any(seat.bid for seat in response.seatbid or ()):
            return _Answer(NO_BID, nbr=response.nbr)
        if response.id != request_id:
            return self._refuse(buyer, response, WRONG_ID)
        cur = (response.cur or "USD").upper()
        rate = self.rate(cur)
        if cur != buyer.currency.upper() or rate is None:
            return self._refuse(buyer, response, WRONG_CURRENCY)
        return self._judge_bids(buyer, response, rate, blocks)

    def _refuse(self, buyer: BuyerSnap, response: BidResponse, reason: str) -> _Answer:
        """A whole answer dropped: each of its priced bids lost for the answer's reason."""
        answer = _Answer(reason)
        cur = (response.cur or "USD").upper()
        for seat in response.seatbid or ():
            for bid in seat.bid:
                if bid.price > 0:
                    ext = external_bid(buyer, response, bid, seat.seat, Decimal(1), cur)
                    answer.lost.append(LostBid(ext, LOSS_CODES[reason]))
        return answer

    def _judge_bids(
        self, buyer: BuyerSnap, response: BidResponse, rate: Decimal, blocks: Blocks
    ) -> _Answer:
        answer = _Answer(BID)
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
                    ext = external_bid(
                        buyer, response, bid, seat.seat, rate, buyer.currency.upper()
                    )
                    answer.lost.append(LostBid(ext, loss_code(reason, bid, floor), floor))
        if not answer.bids:
            # The most frequent drop names the outcome; ties go to the first seen.
            answer.reason = answer.dropped.most_common(1)[0][0]
        return answer

    # -- counters -----------------------------------------------------------------------

    def _count(self, buyer_id: int, reason: str, n: int = 1) -> None:
        if n:
            self._counts[(buyer_id, reason)] += n

    def stats(self) -> dict[str, float]:
        """The counters not yet flushed, named as their Redis hash fields."""
        fields: dict[str, float] = {f"{b}:{r}": n for (b, r), n in self._counts.items()}
        for buyer_id, count in self._latency_count.items():
            fields[f"{buyer_id}:{LATENCY_SUM}"] = self._latency_sum[buyer_id]
            fields[f"{buyer_id}:{LATENCY_COUNT}"] = count
        return fields

    async def flush_stats(self, redis: Redis, keys: RedisKeys, day: str) -> None:
        """Add the counters gathered since the last flush to the day's `buyer_stats` hash, in
        one pipeline. If Redis fails they are kept for the next flush (a connection lost
        mid-pipeline may then count some twice: these are operational counters, not money)."""
        counts, self._counts = self._counts, Counter()
        sums, self._latency_sum = self._latency_sum, defaultdict(float)
        latency_counts, self._latency_count = self._latency_count, Counter()
        # Whole milliseconds go to Redis; the fractions wait for the next flush.
        whole = {b: int(total) for b, total in sums.items()}
        for buyer_id, total in sums.items():
            if total - whole[buyer_id]:
                self._latency_sum[buyer_id] += total - whole[buyer_id]
        if not counts and not latency_counts:
            return
        key = keys.buyer_stats(day)
        pipe = redis.pipeline(transaction=False)
        for (buyer_id, reason), n in counts.items():
            pipe.hincrby(key, f"{buyer_id}:{reason}", n)
        for buyer_id, n in latency_counts.items():
            pipe.hincrby(key, f"{buyer_id}:{LATENCY_SUM}", whole.get(buyer_id, 0))
            pipe.hincrby(key, f"{buyer_id}:{LATENCY_COUNT}", n)
        pipe.expire(key, BUYER_STATS_TTL)
        try:
            await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("buyer stats flush failed, keeping them for the next: %s", exc)
            self._counts.update(counts)
            self._latency_count.update(latency_counts)
            for buyer_id, ms in whole.items():
                self._latency_sum[buyer_id] += ms

    # -- notices ------------------------------------------------------------------------

    def notify(self, url: str, values: Mapping[str, str], *, buyer_id: int = 0) -> None:
        """Fire a win (nurl), billing (burl) or loss (lurl) notice: a GET to `url` with the
        OpenRTB macros substituted. Does not wait; call it from the event loop. At most
        `max_notices_in_flight` are in flight, the rest are dropped and counted."""
        if len(self._notices) >= self.max_notices_in_flight:
            self._count(buyer_id, NOTICE_DROPPED)
            return
        target = substitute(url, values)
        if not target.startswith(("http://", "https://")):
            self._count(buyer_id, NOTICE_ERROR)
            return
        try:
            self.fetch_policy.check_literal(target)
        except RefusedAddress:
            self._count(buyer_id, REFUSED_ADDRESS)
            return
        task = asyncio.get_running_loop().create_task(self._send_notice(target, buyer_id))
        self._notices.add(task)
        task.add_done_callback(self._notices.discard)

    async def _send_notice(self, url: str, buyer_id: int) -> None:
        try:
            async with (
                asyncio.timeout(NOTICE_TIMEOUT),
                # A redirect could lead anywhere, an IP literal past the resolver's check.
                self._client().get(url, allow_redirects=False) as response,
            ):
                await response.read()  # lets the connection be reused
                failed = response.status >= 400
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError):
            failed = True
        if failed:
            self._count(buyer_id, NOTICE_ERROR)

    async def fetch_markup(
        self, url: str, values: Mapping[str, str], deadline: float, *, buyer_id: int = 0
    ) -> str | None:
        """The markup of a winning bid that came without `adm`: the body of its win notice
        (OpenRTB lets `nurl` return the markup). This GET is the win notice, so do not also
        `notify` the nurl. None, counted as "markup_error", when it fails or is late."""
        target = substitute(url, values)
        try:
            self.fetch_policy.check_literal(target)
            async with (
                asyncio.timeout(max(0.0, deadline - time.monotonic())),
                self._client().get(target, allow_redirects=False) as response,
            ):
                body = await _read_limited(response)
                if response.status == 200 and body.strip():
                    return body.decode(response.charset or "utf-8", errors="replace")
        except (TimeoutError, _TooLarge, aiohttp.ClientError, OSError, ValueError):
            pass
        self._count(buyer_id, MARKUP_ERROR)
        return None

    async def drain_notices(self, timeout: float = NOTICE_TIMEOUT) -> None:
        """Wait for the notices in flight (shutdown, tests)."""
        if self._notices:
            await asyncio.wait(set(self._notices), timeout=timeout)

    async def close(self) -> None:
        """Let notices in flight finish briefly, then close every connection."""
        await self.drain_notices(CLOSE_GRACE)
        for task in (*self._notices, *self._rounds, *self._late):
            task.cancel()
        if self._session is not None:
            await self._session.close()
            self._session = None


class _TooLarge(Exception):
    pass


async def _read_limited(response: aiohttp.ClientResponse) -> bytes:
    if (response.content_length or 0) > MAX_RESPONSE_BYTES:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _answer_of(task: "asyncio.Task[_Answer]") -> _Answer:
    if task.cancelled():
        return _Answer(TIMEOUT)
    exc = task.exception()
    if exc is not None:  # `_call` catches what the network raises: this is a bug of ours
        log.error("buyer call failed", exc_info=exc)
        return _Answer(ERROR)
    return task.result()


def _per_second_in(
    spec: VideoSpec | None, convert: Callable[[Decimal], Decimal]
) -> VideoSpec | None:
    """The video's `mincpmpersec` in the buyer's currency, like the floors."""
    if spec is None or not spec.mincpmpersec:
        return spec
    return replace(spec, mincpmpersec=convert(spec.mincpmpersec))


def auction_id_of(ctx: AdContext) -> str:
    """`${AUCTION_ID}` in every markup and notice, and the id of the BidRequest each buyer
    gets: the publisher's BidRequest.id on the OpenRTB door (what the exchange knows the
    auction by; Prebid Server forwards it the same way), our request id on the others."""
    return ctx.auction_id or ctx.request_id
