"""A loopback OpenRTB buyer for tests: a real HTTP server on 127.0.0.1, on an ephemeral port.

It runs aiohttp.web on its own event loop in a thread, so the code under test talks to it
over real sockets and cannot cooperate with it by accident (a handler that sleeps does not
hold the caller's loop). Each test sets `behaviour` to what the buyer should do next; the
server records every bid request (body, headers, the client's port) and every notice GET.

    with LoopbackBuyer(Behaviour(bid={"price": "2.50"})) as buyer:
        ... BuyerSnap(endpoint=buyer.endpoint, ...) ...
        assert buyer.requests[0].body["tmax"] < 200
"""

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Self

from aiohttp import web

AUCTION_MACROS = "price=${AUCTION_PRICE}&cur=${AUCTION_CURRENCY}&imp=${AUCTION_IMP_ID}"


@dataclass
class Behaviour:
    """What the buyer does with the next bid requests."""

    status: int = 200
    # Statuses answered in turn, one per bid request, cycling (instead of `status`).
    statuses: tuple[int, ...] = ()
    delay_ms: int = 0
    hang: bool = False  # never answer (until the server stops)
    raw: bytes | None = None  # this body verbatim instead of a bid response (broken JSON)
    no_bid: bool = False  # 200 with an empty seatbid
    response_id: str | None = None  # None: echo the request's id
    currency: str = "USD"
    bidid: str | None = None  # BidResponse.bidid
    # Fields laid over the default bid (price, impid, adomain, cat, dealid, adm, nurl...);
    # a None value removes the field.
    bid: dict[str, Any] = field(default_factory=dict)
    # More bids in the same seat, each laid over the default bid the same way.
    extra_bids: list[dict[str, Any]] = field(default_factory=list)
    notice_status: int = 200
    notice_delay_ms: int = 0
    notice_body: str = ""  # what a notice GET answers (a win notice may return the markup)


@dataclass(frozen=True)
class Received:
    body: dict[str, Any]
    headers: dict[str, str]
    client_port: int
    at: float = 0.0  # epoch seconds it arrived


class LoopbackBuyer:
    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.behaviour = behaviour or Behaviour()
        self.requests: list[Received] = []
        self.notices: list[str] = []  # path and query of each notice GET
        self.port = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="loopback-buyer", daemon=True)
        self._started = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()
        if not self._started.wait(5):
            raise RuntimeError("the loopback buyer did not start")

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._startup())
        self._started.set()
        self._loop.run_forever()
        self._loop.close()

    async def _startup(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application()
        app.router.add_post("/bid", self._bid)
        app.router.add_get("/{tail:.*}", self._notice)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _shutdown(self) -> None:
        assert self._stopping is not None and self._runner is not None
        self._stopping.set()  # hanging handlers give up
        await self._runner.cleanup()

    # -- what tests read ----------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/bid"

    @property
    def last(self) -> Received:
        with self._lock:
            return self.requests[-1]

    def notice_paths(self) -> list[str]:
        with self._lock:
            return list(self.notices)

    def received(self) -> list[Received]:
        with self._lock:
            return list(self.requests)

    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    # -- handlers -----------------------------------------------------------------------

    async def _bid(self, request: web.Request) -> web.StreamResponse:
        behaviour = self.behaviour
        body = json.loads(await request.read())
        peer = request.transport.get_extra_info("peername") if request.transport else None
        with self._lock:
            port = peer[1] if peer else 0
            self.requests.append(Received(body, dict(request.headers), port, time.time()))
            turn = len(self.requests) - 1
        if behaviour.statuses:
            status = behaviour.statuses[turn % len(behaviour.statuses)]
            behaviour = replace(behaviour, status=status)
        if behaviour.hang:
            assert self._stopping is not None
            await self._stopping.wait()
            return web.Response(status=503)
        if behaviour.delay_ms:
            await asyncio.sleep(behaviour.delay_ms / 1000)
        if behaviour.raw is not None:
            return web.Response(status=behaviour.status, body=behaviour.raw)
        if behaviour.status != 200:
            return web.Response(status=behaviour.status)
        return web.json_response(self.bid_response(body, behaviour))

    async def _notice(self, request: web.Request) -> web.Response:
        with self._lock:
            self.notices.append(request.path_qs)
        if self.behaviour.notice_delay_ms:
            await asyncio.sleep(self.behaviour.notice_delay_ms / 1000)
        return web.Response(status=self.behaviour.notice_status, text=self.behaviour.notice_body)

    def bid_response(self, request: dict[str, Any], behaviour: Behaviour) -> dict[str, Any]:
        """A valid answer on the first imp, with the behaviour's changes laid over it."""
        seatbid = []
        if not behaviour.no_bid:
            overrides = [behaviour.bid, *behaviour.extra_bids]
            bids = [self._bid_on(request, n, o) for n, o in enumerate(overrides)]
            seatbid = [{"seat": "seat-1", "bid": bids}]
        response = {
            "id": behaviour.response_id or request["id"],
            "cur": behaviour.currency,
            "seatbid": seatbid,
        }
        if behaviour.bidid:
            response["bidid"] = behaviour.bidid
        return response

    def _bid_on(self, request: dict[str, Any], n: int, overrides: dict[str, Any]) -> dict[str, Any]:
        bid: dict[str, Any] = {
            "id": f"bid-{n + 1}",
            "impid": request["imp"][0]["id"],
            "price": 1.5,
            "adm": "<div>buyer ad</div>",
            "adomain": ["brand.example"],
            "crid": "creative-1",
            "cid": "campaign-1",
            "cat": ["IAB1"],
            "w": 300,
            "h": 250,
            "mtype": 1,
            "nurl": f"{self.base_url}/win?{AUCTION_MACROS}",
            "burl": f"{self.base_url}/bill?{AUCTION_MACROS}",
            "lurl": f"{self.base_url}/loss?reason=${{AUCTION_LOSS}}&min=${{AUCTION_MIN_TO_WIN}}",
        }
        bid.update(overrides)
        return {k: v for k, v in bid.items() if v is not None}


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
