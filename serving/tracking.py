"""The tracking doors: impressions, clicks, the conversion pixel, player events and errors.

Each checks the signed token its URL carries (`serving.tokens`), then records one event
with the sink's next batch: impressions and clicks once per decision, billed from these
events and screened for invalid traffic (`serving.ivt`); the rest counted, never billed.
"""

import time
from collections.abc import Callable

from compliance.anonymise import truncate_ip
from compliance.policy import apply_gdpr_by_geography, evaluate
from compliance.pseudonym import Pseudonymiser
from serving import clock as spend_clock
from serving.buyers.pool import BuyerPool
from serving.config import ServingConfig
from serving.conversions import PIXEL as PIXEL_FIELDS
from serving.conversions import ClickId, ClickIds, conversion_event, parse_conversion
from serving.enrich import Enricher
from serving.events import Event, EventSink
from serving.http import GIF, NO_STORE, HttpError, Scope, Send, all_headers, query_params, respond
from serving.ivt.events import EventScreen
from serving.ivt.judge import NETWORK_CHANGED, PREFETCH
from serving.keys import RedisKeys
from serving.measure import event_name, record_event
from serving.store import SnapshotStore
from serving.sync import pixel_context, raw_user_id
from serving.tokens import InvalidToken, TokenKind, TokenSigner, TrackingToken

# Tracking doors while Redis is unavailable: serving resumes within a second or two of its
# return (README "Redis outage"), so a retry after this many seconds will most likely land.
RETRY_AFTER = (b"retry-after", b"5")


class TrackingDoors:
    """/v1/imp, /v1/click, /v1/conv, /v1/ev and /v1/err (routed by `serving.app`)."""

    def __init__(
        self,
        config: ServingConfig,
        *,
        signer: TokenSigner,
        click_ids: ClickIds,
        screen: EventScreen,
        store: SnapshotStore,
        sink: EventSink,
        keys: RedisKeys,
        pool: BuyerPool,
        enricher: Enricher,
        pseudonyms: Pseudonymiser,
        client_ip: Callable[[Scope], str | None],
    ) -> None:
        self.config, self.signer, self.click_ids, self.screen = config, signer, click_ids, screen
        self.store, self.sink, self.keys, self.pool = store, sink, keys, pool
        self.enricher, self.pseudonyms, self.client_ip = enricher, pseudonyms, client_ip

    async def impression(self, text: str, scope: Scope, send: Send, request_id: str) -> None:
        token = self._verify(text, "imp")
        if not self._fresh(token):
            raise HttpError(410, "expired", "the impression token has expired")
        # A CPM impression was charged at its win: recording it clears the pending charge.
        judged = await self._record_billable(token, "imp", scope, cost=0, pending=token.cpm_micros)
        # The buyer is told of a billable impression only (its billing notice).
        if judged == "" and token.notice:
            self.pool.notify(token.notice, {}, buyer_id=token.buyer_id)
        await respond(send, 200, GIF, request_id, [(b"content-type", b"image/gif"), NO_STORE])

    async def click(self, text: str, scope: Scope, send: Send, request_id: str) -> None:
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

    async def conversion(self, scope: Scope, send: Send, request_id: str) -> None:
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

    async def creative_event(
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

    def _verify(self, text: str, kind: TokenKind, *also: TokenKind) -> TrackingToken:
        try:
            return self.signer.verify(text, kind, *also)
        except InvalidToken as exc:
            raise HttpError(400, "invalid_token", str(exc)) from exc

    def _fresh(self, token: TrackingToken) -> bool:
        return time.time() - token.issued_at <= self.config.token_ttl

    async def _record_billable(
        self, token: TrackingToken, kind: TokenKind, scope: Scope, cost: int, pending: int
    ) -> str | None:
        """Record an impression or click once per decision (the rollups bill from these
        events); `cost` is charged now, `pending` was charged at the win. None for a repeat,
        "" when billed, else why it is invalid (recorded with its reason, not billed)."""
        now = spend_clock.now()
        network = truncate_ip(self.client_ip(scope)) or ""
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
