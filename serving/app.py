"""The lean ASGI serving app: ad requests, impression and click tracking.

It does not pass through Django's request machinery and never touches the ORM: it decides on
the in-memory snapshot and talks to Redis only in batches (see `serving.events`).
"""

import asyncio
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec
from redis.asyncio import Redis

from compliance.policy import Permissions, PrivacySignals, evaluate
from serving.decide import Decision, SlotRequest, decide
from serving.events import Event, EventSink
from serving.keys import RedisKeys, day_of
from serving.schema import AdRequest, ad_request_decoder
from serving.snapshot import PlacementSnap
from serving.store import SnapshotStore
from serving.tokens import InvalidToken, TokenSigner, TrackingToken

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
NO_STORE = (b"cache-control", b"no-store")

_json = msgspec.json.Encoder()
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

    @classmethod
    def from_settings(cls) -> "ServingConfig":
        from django.conf import settings

        return cls(
            redis_url=settings.REDIS_URL,
            key_prefix=settings.REDIS_KEY_PREFIX,
            signing_key=settings.SERVING_SIGNING_KEY,
            public_url=settings.SERVING_PUBLIC_URL,
            token_ttl=settings.SERVING_TOKEN_TTL_SECONDS,
            gvl_vendor_id=settings.GVL_VENDOR_ID,
        )


class HttpError(Exception):
    def __init__(self, status: int, error: str, detail: str = "") -> None:
        super().__init__(detail or error)
        self.status, self.error, self.detail = status, error, detail


class ServingApp:
    def __init__(self, config: ServingConfig) -> None:
        self.config = config
        self.keys = RedisKeys(config.key_prefix)
        self.signer = TokenSigner(config.signing_key)
        # Connections open lazily, on the first command inside the server's event loop.
        self.redis = Redis.from_url(config.redis_url)
        self.store = SnapshotStore(self.redis, self.keys)
        self.sink = EventSink(self.redis, self.keys.events)
        self._started = asyncio.Event()
        self._starting: asyncio.Lock | None = None
        self._refresher: asyncio.Task[None] | None = None

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
            self._refresher = asyncio.create_task(self.store.run(self.config.refresh_interval))
            self._started.set()

    async def shutdown(self) -> None:
        if self._refresher:
            self._refresher.cancel()
        await self.sink.drain()
        await self.redis.aclose()
        self._started.clear()

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
        if path == "/v1/ad":
            if method != "POST":
                raise HttpError(405, "method_not_allowed", "use POST")
            await self._ad(scope, receive, send, request_id)
        elif path.startswith("/v1/imp/") and method in ("GET", "HEAD"):
            await self._impression(path.removeprefix("/v1/imp/"), send, request_id)
        elif path.startswith("/v1/click/") and method in ("GET", "HEAD"):
            await self._click(path.removeprefix("/v1/click/"), send, request_id)
        elif path == "/v1/health":
            await self._health(send, request_id)
        else:
            raise HttpError(404, "not_found", f"no serving endpoint at {path}")

    # -- endpoints ----------------------------------------------------------------------

    async def _ad(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        body = await _read_body(receive)
        request = _decode_ad_request(body)
        index = self.store.index
        if index is None:
            raise HttpError(503, "not_ready", "no campaign snapshot has been published yet")
        placement = index.placements_by_key.get(request.placement)
        if placement is None:
            raise HttpError(401, "unknown_placement", "the placement key is not known")

        now = time.time()
        permissions = evaluate(_privacy_signals(request, scope), self.config.gvl_vendor_id)
        if not permissions.serve:
            self._emit_requests(placement, request, [], now, request_id, permissions)
            await _respond(
                send, 204, b"", request_id, [(b"x-no-fill-reason", permissions.reason.encode())]
            )
            return

        slots = [SlotRequest(s.id, s.sizes) for s in request.slots]
        decisions = decide(index, placement, slots, now, self.store.exhausted)
        self._emit_requests(placement, request, decisions, now, request_id, permissions)
        if not decisions:
            await _respond(send, 204, b"", request_id, [(b"x-no-fill-reason", b"no_eligible")])
            return
        payload = {
            "id": request_id,
            "decisions": [
                self._render(d, placement, f"{request_id}-{n}", int(now))
                for n, d in enumerate(decisions)
            ],
        }
        await _respond(send, 200, _json.encode(payload), request_id, [JSON, NO_STORE])

    def _render(
        self, d: Decision, placement: PlacementSnap, decision_id: str, now: int
    ) -> dict[str, Any]:
        li, creative = d.line_item, d.creative
        token = TrackingToken(
            kind="imp",
            decision_id=decision_id,
            placement_id=placement.id,
            line_item_id=li.id,
            campaign_id=li.campaign_id,
            advertiser_id=li.advertiser_id,
            creative_id=creative.id,
            cpm_micros=int(d.price * MICROS),
            issued_at=now,
        )
        base = self.config.public_url
        imp_url = f"{base}/v1/imp/{self.signer.sign(token)}"
        click_token = msgspec.structs.replace(token, kind="clk", landing_url=creative.click_url)
        click_url = f"{base}/v1/click/{self.signer.sign(click_token)}"
        markup = creative.markup.replace("%%CLICK_URL%%", click_url).replace("%%IMP_URL%%", imp_url)
        return {
            "slot": d.slot_id,
            "id": decision_id,
            "line_item": li.id,
            "creative": creative.id,
            "format": "html",
            "size": d.size,
            "markup": markup,
            "impression_url": imp_url,
            "click_url": click_url,
        }

    def _emit_requests(
        self,
        placement: PlacementSnap,
        request: AdRequest,
        decisions: list[Decision],
        now: float,
        request_id: str,
        permissions: Permissions,
    ) -> None:
        won = {d.slot_id: d for d in decisions}
        ts = int(now * 1000)
        events = []
        for slot in request.slots:
            d = won.get(slot.id)
            if d is None:
                events.append(Event(t="req", ts=ts, pl=placement.id, d=request_id))
            else:
                li = d.line_item
                events.append(
                    Event(
                        t="req", ts=ts, pl=placement.id, li=li.id, cp=li.campaign_id,
                        adv=li.advertiser_id, cr=d.creative.id, d=request_id,
                    )
                )  # fmt: skip
        events[0] = msgspec.structs.replace(events[0], cs=permissions.ledger_text())
        self.sink.emit(events)

    async def _impression(self, text: str, send: Send, request_id: str) -> None:
        token = self._verify(text, "imp")
        if not self._fresh(token):
            raise HttpError(410, "expired", "the impression token has expired")
        index = self.store.index
        budget = index.budgets.get(token.campaign_id) if index else None
        budget_nanos = int(budget * 1_000_000_000) if budget is not None else 0
        await self._record(token, cost=token.cpm_micros, budget=budget_nanos)
        await _respond(send, 200, GIF, request_id, [(b"content-type", b"image/gif"), NO_STORE])

    async def _click(self, text: str, send: Send, request_id: str) -> None:
        token = self._verify(text, "clk")
        # A late click still takes the user to the advertiser; it is just not counted.
        if self._fresh(token):
            await self._record(token, cost=0, budget=0)
        location = token.landing_url.encode()
        await _respond(send, 302, b"", request_id, [(b"location", location), NO_STORE])

    async def _health(self, send: Send, request_id: str) -> None:
        version = self.store.version
        status = 200 if version else 503
        body = _json.encode({"status": "ok" if version else "no_snapshot", "snapshot": version})
        await _respond(send, status, body, request_id, [JSON, NO_STORE])

    # -- helpers ------------------------------------------------------------------------

    def _verify(self, text: str, kind: str) -> TrackingToken:
        try:
            return self.signer.verify(text, kind)  # type: ignore[arg-type]
        except InvalidToken as exc:
            raise HttpError(400, "invalid_token", str(exc)) from exc

    def _fresh(self, token: TrackingToken) -> bool:
        return time.time() - token.issued_at <= self.config.token_ttl

    async def _record(self, token: TrackingToken, cost: int, budget: int) -> None:
        now = time.time()
        day = day_of(now)
        event = Event(
            t=token.kind,
            ts=int(now * 1000),
            pl=token.placement_id,
            li=token.line_item_id,
            cp=token.campaign_id,
            adv=token.advertiser_id,
            cr=token.creative_id,
            cpm=token.cpm_micros if token.kind == "imp" else 0,
            d=token.decision_id,
        )
        await self.sink.record_billable(
            event,
            dedupe_key=self.keys.seen(token.kind, token.decision_id),
            spend_key=self.keys.spend(day, token.campaign_id),
            exhausted_key=self.keys.exhausted(day),
            cost=cost,
            budget=budget,
            dedupe_ttl=self.config.token_ttl + 3600,
        )


def _decode_ad_request(body: bytes) -> AdRequest:
    try:
        request = ad_request_decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise HttpError(400, "invalid_request", str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise HttpError(400, "malformed_json", str(exc)) from exc
    if len({slot.id for slot in request.slots}) != len(request.slots):
        raise HttpError(400, "invalid_request", "slot ids must be unique - at `$.slots`")
    return request


def _privacy_signals(request: AdRequest, scope: Scope) -> PrivacySignals:
    regs, user, device = request.regs, request.user, request.device
    return PrivacySignals(
        gdpr=regs.gdpr if regs else None,
        tc_string=user.consent if user else None,
        us_privacy=regs.us_privacy if regs else None,
        gpp=regs.gpp if regs else None,
        gpp_sid=tuple(regs.gpp_sid or ()) if regs else (),
        coppa=regs.coppa if regs else None,
        gpc=_header(scope, b"sec-gpc"),
        lmt=device.lmt if device else None,
    )


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
    await send({"type": "http.response.body", "body": body})
