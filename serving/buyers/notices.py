"""Win (nurl), billing (burl) and loss (lurl) notices to buyers: a GET with the OpenRTB macros
substituted, fired without waiting and bounded in number, and the markup of a winning bid
that came without `adm`, read from its win notice."""

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping

import aiohttp

from serving.buyers.bids import LostBid
from serving.buyers.counters import BuyerCounters
from serving.buyers.http import TooLarge, read_limited
from serving.buyers.outcomes import MARKUP_ERROR, NOTICE_DROPPED, NOTICE_ERROR, REFUSED_ADDRESS
from serving.buyers.requests import auction_id_of
from serving.context import AdContext
from serving.macros import substitute
from serving.netguard import FetchPolicy, RefusedAddress

NOTICE_TIMEOUT = 2.0


class Notices:
    """The notices of one buyer pool, on its session; failures are counted per buyer."""

    def __init__(
        self,
        client: Callable[[], aiohttp.ClientSession],
        counters: BuyerCounters,
        fetch_policy: FetchPolicy,
        max_in_flight: int,
    ) -> None:
        self._client = client
        self._counters = counters
        self.fetch_policy = fetch_policy
        self.max_in_flight = max_in_flight
        self.in_flight: set[asyncio.Task[None]] = set()

    def notify(self, url: str, values: Mapping[str, str], *, buyer_id: int = 0) -> None:
        """Fire a win (nurl), billing (burl) or loss (lurl) notice: a GET to `url` with the
        OpenRTB macros substituted. Does not wait; call it from the event loop. At most
        `max_in_flight` are in flight, the rest are dropped and counted."""
        if len(self.in_flight) >= self.max_in_flight:
            self._counters.count(buyer_id, NOTICE_DROPPED)
            return
        target = substitute(url, values)
        if not target.startswith(("http://", "https://")):
            self._counters.count(buyer_id, NOTICE_ERROR)
            return
        try:
            self.fetch_policy.check_literal(target)
        except RefusedAddress:
            self._counters.count(buyer_id, REFUSED_ADDRESS)
            return
        task = asyncio.get_running_loop().create_task(self._send(target, buyer_id))
        self.in_flight.add(task)
        task.add_done_callback(self.in_flight.discard)

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

    async def _send(self, url: str, buyer_id: int) -> None:
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
            self._counters.count(buyer_id, NOTICE_ERROR)

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
                body = await read_limited(response)
                if response.status == 200 and body.strip():
                    return body.decode(response.charset or "utf-8", errors="replace")
        except (TimeoutError, TooLarge, aiohttp.ClientError, OSError, ValueError):
            pass
        self._counters.count(buyer_id, MARKUP_ERROR)
        return None

    async def drain(self, timeout: float = NOTICE_TIMEOUT) -> None:
        """Wait for the notices in flight (shutdown, tests)."""
        if self.in_flight:
            await asyncio.wait(set(self.in_flight), timeout=timeout)
