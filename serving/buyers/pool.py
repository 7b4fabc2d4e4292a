"""The buyer pool of one serving process (see the package docstring): the round's
call-and-collect loop, each buyer's circuit and QPS cap, and what the pool offers the
serving app (notices, counters, the FX table)."""

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

import aiohttp
from redis.asyncio import Redis

from compliance.policy import BuyerPermission
from serving.buyers.answers import Answer, judge_answer
from serving.buyers.bids import TIMEOUT, Blocks, LostBid
from serving.buyers.counters import BuyerCounters
from serving.buyers.http import HEADERS, TooLarge, new_session, read_limited
from serving.buyers.notices import NOTICE_TIMEOUT, Notices
from serving.buyers.outcomes import (
    BID,
    BUILD_ERROR,
    CIRCUIT_OPEN,
    ERROR,
    NO_FX_RATE,
    NO_TIME,
    QPS_CAP,
    REQUEST,
    TOO_LARGE,
    BuyerOutcome,
    BuyerRound,
    is_failure,
)
from serving.buyers.requests import auction_id_of, build_request, imps_in, permission_for
from serving.context import AdContext, Imp
from serving.keys import RedisKeys
from serving.latency import LatencyCounts
from serving.limits.fleet import FleetLimits
from serving.limits.local import CircuitBreaker, TokenBucket
from serving.metrics import BREAKER_OPEN, Histogram
from serving.netguard import FetchPolicy
from serving.openrtb import LOSS_EXPIRED
from serving.snapshot import BuyerSnap

log = logging.getLogger(__name__)

# Kept back from the deadline for decoding the answers and running the auction.
SAFETY_MARGIN = 0.005
# Below this much time, a call could only end in a timeout: the buyer is skipped instead.
MIN_CALL_TIME = 0.005
# How long an answer that missed the round is still read, for its loss notices (2, expired),
# and how many such answers a process follows at once.
LATE_GRACE = 1.0
MAX_LATE_IN_FLIGHT = 64
# How long `close` lets notices in flight finish.
CLOSE_GRACE = 1.0


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


class BuyerPool:
    """Calls external buyers for one serving process; see the package docstring."""

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
        self._session: aiohttp.ClientSession | None = None
        self._states: dict[int, _BuyerState] = {}
        self.counters = BuyerCounters()
        self.notices = Notices(
            self._client, self.counters, self.fetch_policy, max_notices_in_flight
        )
        self._rounds: set[asyncio.Task[Answer]] = set()
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
            self._session = new_session(self.fetch_policy, self.max_connections_per_buyer)
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
            self._settle(result, call, _answer_of(task) if task.done() else Answer(TIMEOUT))
            self._cancel(task)
        # Bids that could never win are told so now; the auction's losers after it.
        self.notify_losses(ctx, result.lost)
        return result

    def _abandon(self, tasks: Mapping["asyncio.Task[Answer]", _Call]) -> None:
        """The ad request itself was cancelled: keep the verdicts that exist, judge no one
        on the calls cut short."""
        for task, call in tasks.items():
            if task.done():
                self._settle(BuyerRound(), call, _answer_of(task))
            else:
                self._state(call.buyer.id).breaker.release()
                self._cancel(task)

    def _cancel(self, task: "asyncio.Task[Answer]") -> None:
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
            self.counters.count(buyer.id, reason)
            return None
        currency = buyer.currency.upper()
        if currency not in priced:
            priced[currency] = imps_in(imps, self.rate(currency))
        try:
            body = build_request(ctx, buyer, priced[currency], permission, timeout)
        except Exception:  # a bug of ours must not take the ad request down with it
            log.exception("could not build the bid request for buyer %s", buyer.id)
            outcome.outcome = BUILD_ERROR
            self.counters.count(buyer.id, BUILD_ERROR)
            return None
        self._state(buyer.id).breaker.start()
        outcome.called = True
        self.counters.count(buyer.id, REQUEST)
        return _Call(buyer, outcome, body, timeout)

    def _eligibility(
        self, ctx: AdContext, buyer: BuyerSnap, timeout: float, now: float
    ) -> tuple[BuyerPermission | None, str, str]:
        """May this buyer be called now, and with what data? Returns the permission, or the
        reason it is skipped and a detail. Consumes a QPS token when it may be called."""
        permission, reason, detail = permission_for(ctx, buyer)
        if permission is None:
            return None, reason, detail
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

    async def _call(self, call: _Call, ctx: AdContext, blocks: Blocks) -> Answer:
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
            return Answer(TIMEOUT)
        try:
            status, payload = fetch.result()
        except TimeoutError:
            return Answer(TIMEOUT)
        except TooLarge:
            return Answer(TOO_LARGE)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            log.debug("buyer %s: %s", call.buyer.id, exc)
            return Answer(ERROR)
        latency_ms = (time.monotonic() - started) * 1000
        answer = judge_answer(call.buyer, status, payload, auction_id_of(ctx), blocks, self.rate)
        answer.status, answer.latency_ms = status, latency_ms
        return answer

    async def _fetch(self, call: _Call) -> tuple[int, bytes]:
        self.fetch_policy.check_literal(call.buyer.endpoint)
        async with asyncio.timeout(call.timeout + LATE_GRACE):
            async with self._client().post(
                call.buyer.endpoint, data=call.body, headers=HEADERS, allow_redirects=False
            ) as response:
                return response.status, await read_limited(response)

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
            answer = judge_answer(
                call.buyer, status, payload, auction_id_of(ctx), blocks, self.rate
            )
            # The valid ones came too late; the others have their own reason anyway.
            late = [LostBid(bid, LOSS_EXPIRED) for bid in answer.bids]
            self.notify_losses(ctx, [*late, *answer.lost])

        fetch.add_done_callback(arrived)

    def _settle(self, result: BuyerRound, call: _Call, answer: Answer) -> None:
        """Record one call's verdict: counters, breaker, the round's bids and outcome.

        Bids are counted one by one ("bid" or their drop reason); an answer without any is
        counted once by its reason (no_bid, timeout, http_500...)."""
        buyer, outcome = call.buyer, call.outcome
        outcome.outcome, outcome.status, outcome.nbr = answer.reason, answer.status, answer.nbr
        outcome.latency_ms = answer.latency_ms
        outcome.bids, outcome.dropped = len(answer.bids), dict(answer.dropped)
        for reason, n in answer.dropped.items():
            self.counters.count(buyer.id, reason, n)
        if answer.bids:
            self.counters.count(buyer.id, BID, len(answer.bids))
        elif not answer.dropped:
            self.counters.count(buyer.id, answer.reason)
        if answer.latency_ms is not None:
            self.counters.answered(buyer.id, answer.latency_ms)
        elif answer.reason == TIMEOUT:
            self.counters.timed_out(buyer.id)
        failed = is_failure(answer.reason)
        self._state(buyer.id).breaker.record(failed, time.monotonic())
        if self.fleet is not None:
            self.fleet.breakers.record(buyer.id, failed)
        result.bids.extend(answer.bids)
        result.lost.extend(answer.lost)

    # -- counters and notices, for the serving app ---------------------------------------

    @property
    def latency(self) -> dict[int, Histogram]:
        """Buyer id -> seconds to an answer since the process started (`BuyerCounters`)."""
        return self.counters.latency

    @property
    def latency_counts(self) -> LatencyCounts:
        return self.counters.latency_counts

    def stats(self) -> dict[str, float]:
        """The counters not yet flushed, named as their Redis hash fields."""
        return self.counters.stats()

    async def flush_stats(self, redis: Redis, keys: RedisKeys, day: str) -> None:
        """Add the counters since the last flush to the day's `buyer_stats` hash."""
        await self.counters.flush(redis, keys, day)

    def notify(self, url: str, values: Mapping[str, str], *, buyer_id: int = 0) -> None:
        """Fire a win, billing or loss notice without waiting (`Notices.notify`)."""
        self.notices.notify(url, values, buyer_id=buyer_id)

    def notify_losses(self, ctx: AdContext, lost: Iterable[LostBid]) -> None:
        """A loss notice (lurl) to every lost bid that has one: once, never waited on."""
        self.notices.notify_losses(ctx, lost)

    async def fetch_markup(
        self, url: str, values: Mapping[str, str], deadline: float, *, buyer_id: int = 0
    ) -> str | None:
        """A nurl-only winner's markup, read from its win notice (`Notices.fetch_markup`)."""
        return await self.notices.fetch_markup(url, values, deadline, buyer_id=buyer_id)

    async def drain_notices(self, timeout: float = NOTICE_TIMEOUT) -> None:
        """Wait for the notices in flight (shutdown, tests)."""
        await self.notices.drain(timeout)

    async def close(self) -> None:
        """Let notices in flight finish briefly, then close every connection."""
        await self.drain_notices(CLOSE_GRACE)
        for task in (*self.notices.in_flight, *self._rounds, *self._late):
            task.cancel()
        if self._session is not None:
            await self._session.close()
            self._session = None


def _answer_of(task: "asyncio.Task[Answer]") -> Answer:
    if task.cancelled():
        return Answer(TIMEOUT)
    exc = task.exception()
    if exc is not None:  # `_call` catches what the network raises: this is a bug of ours
        log.error("buyer call failed", exc_info=exc)
        return Answer(ERROR)
    return task.result()
