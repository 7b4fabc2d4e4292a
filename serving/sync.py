"""User sync: learning each buyer's id for a user, so that bid requests can carry it as
`user.buyeruid` (docs/privacy.md, "User sync"; docs/openrtb.md).

Two legs, both image-pixel friendly GETs:

1. `GET /v1/sync?buyer=<id>&uid=<user id>` (or `ifa=`), with the consent signals a page has:
   `gdpr`, `gdpr_consent`, `us_privacy`, `gpp`, `gpp_sid`, `coppa`, `lmt`, and `Sec-GPC`.
   When consent allows us ids and allows that buyer to store and read ids on the device
   (`Permissions.sync_refusal`), we answer a 302 to the buyer's `sync_url` with its macros
   filled; otherwise a 1x1 GIF with `x-no-sync-reason` (and the buyer's row, if any, is
   forgotten). `${REDIRECT}` is our return URL, carrying a random one-time nonce: the
   buyer never sees our pseudonymous id.
2. `GET /v1/sync/return?s=<nonce>&uid=<buyer's id>`: the buyer's redirect back. The nonce
   (kept `SYNC_STATE_TTL` seconds, usable once) names the pseudonym and the buyer; the uid
   is stored in the sync table `sync:<pseudonym>` (field: buyer id) with an expiry.

The table is keyed by the pseudonym of the period (`compliance.pseudonym`): when the key
rotates, a user's syncs are no longer found and age out, and the buyer is synced again.
Serving reads the table with the frequency caps, in the same batched Redis round trip.
"""

import os
import re
import time
from collections.abc import Mapping
from urllib.parse import quote

from compliance.policy import PrivacySignals
from compliance.pseudonym import Pseudonymiser
from serving.context import AdContext, DeviceInfo
from serving.events import EventSink
from serving.http import GIF, NO_STORE, HttpError, Scope, Send, header, int_param, respond
from serving.keys import RedisKeys
from serving.snapshot import BuyerSnap

# A sync that has not come back within this long is abandoned (the nonce expires).
SYNC_STATE_TTL = 600
MAX_BUYER_UID = 256
_NONCE = re.compile(r"^[0-9a-f]{32}$")
PIXEL = [(b"content-type", b"image/gif"), NO_STORE]


def buyer_uid_problem(uid: str | None, macro: str) -> str:
    """Why a uid sent back by a buyer is not one, or ""."""
    if not uid:
        return "`uid` is required"
    if len(uid) > MAX_BUYER_UID:
        return f"`uid` is longer than {MAX_BUYER_UID} characters"
    if not uid.isprintable() or not uid.isascii():
        return "`uid` must be printable ASCII"
    if uid == macro:
        return f"`uid` is the unreplaced macro {macro!r}"
    return ""


def sync_macros(ctx: AdContext, redirect: str) -> dict[str, str]:
    """The sync URL's macros, URL-encoded (they land in a query string)."""
    privacy = ctx.privacy
    values = {
        "GDPR": "" if privacy.gdpr is None else str(privacy.gdpr),
        "GDPR_CONSENT": privacy.tc_string or "",
        "US_PRIVACY": privacy.us_privacy or "",
        "GPP": privacy.gpp or "",
        "GPP_SID": ",".join(str(s) for s in privacy.gpp_sid),
        "REDIRECT": redirect,
    }
    return {name: quote(value, safe="") for name, value in values.items()}


def fill(url: str, values: Mapping[str, str]) -> str:
    for name, value in values.items():
        url = url.replace("${" + name + "}", value)
    return url


def raw_user_id(ctx: AdContext) -> str | None:
    """The id a pseudonym is made of: the user id, else an IFA that is one (not all-zero, not
    sent with limit-ad-tracking) - the same rule as the ad doors."""
    ifa = ctx.device.ifa
    if ifa and (ctx.device.lmt or not ifa.strip("0-")):
        ifa = None
    return ctx.user_id or ifa or None


class UserSync:
    """The two legs of a user sync for one serving process."""

    def __init__(
        self,
        sink: EventSink,
        keys: RedisKeys,
        pseudonyms: Pseudonymiser,
        public_url: str,
        table_ttl: int,
    ) -> None:
        self.sink, self.keys, self.pseudonyms = sink, keys, pseudonyms
        self.public_url = public_url.rstrip("/")
        self.table_ttl = table_ttl

    def context(self, query: Mapping[str, str], scope: Scope, request_id: str) -> AdContext:
        """The sync request as an AdContext without imps, so that consent is decided by the
        same policy as an ad request's. Raises ValueError naming a bad parameter."""
        return pixel_context(query, scope, request_id, "sync")

    async def start(
        self, ctx: AdContext, buyer: BuyerSnap, refusal: str, send: Send, request_id: str
    ) -> None:
        """Leg 1: redirect to the buyer, or a pixel saying why not."""
        raw = raw_user_id(ctx)
        if not raw and not refusal:
            refusal = "no_user_id"
        if refusal:
            if raw:
                # Consent withdrawn (or never given): forget what this buyer told us before.
                user = self.pseudonyms.pseudonym(raw, ctx.now)
                self.sink.call("HDEL", self.keys.sync(user), str(buyer.id))
            headers = [*PIXEL, (b"x-no-sync-reason", refusal.encode())]
            await respond(send, 200, GIF, request_id, headers)
            return
        assert raw is not None  # noqa: S101 - checked above
        user = self.pseudonyms.pseudonym(raw, ctx.now)
        nonce = os.urandom(16).hex()
        # Awaited: the buyer may redirect back before a fire-and-forget write lands.
        await self.sink.fetch(
            "SET", self.keys.sync_state(nonce), f"{user}|{buyer.id}", "EX", SYNC_STATE_TTL
        )
        back = f"{self.public_url}/v1/sync/return?s={nonce}&uid={buyer.sync_uid_macro}"
        location = fill(buyer.sync_url, sync_macros(ctx, back))
        await respond(send, 302, b"", request_id, [(b"location", location.encode()), NO_STORE])

    async def finish(
        self,
        query: Mapping[str, str],
        buyers: Mapping[int, BuyerSnap],
        send: Send,
        request_id: str,
    ) -> int:
        """Leg 2: store the buyer's uid; returns the buyer id."""
        nonce = query.get("s", "")
        if not _NONCE.match(nonce):
            raise HttpError(400, "invalid_request", "`s` is not a sync nonce")
        uid = query.get("uid")
        state = await self.sink.fetch("GETDEL", self.keys.sync_state(nonce))
        if not state:
            raise HttpError(410, "expired", "the sync expired or was already completed")
        user, _, buyer_text = state.decode().partition("|")
        buyer = buyers.get(int(buyer_text))
        if buyer is None or not buyer.sync_url:
            raise HttpError(410, "expired", "the buyer no longer syncs")
        problem = buyer_uid_problem(uid, buyer.sync_uid_macro)
        if problem:
            raise HttpError(400, "invalid_request", problem)
        assert uid is not None  # noqa: S101 - checked above
        key = self.keys.sync(user)
        await self.sink.fetch("HSET", key, str(buyer.id), uid)
        self.sink.call("EXPIRE", key, self.table_ttl)
        await respond(send, 200, GIF, request_id, PIXEL)
        return buyer.id


def parse_buyer_uids(raw: list[bytes]) -> dict[int, str]:
    """An HGETALL reply of the sync table: buyer id → uid."""
    return {int(raw[i]): raw[i + 1].decode() for i in range(0, len(raw), 2)}


def pixel_context(
    query: Mapping[str, str], scope: Scope, request_id: str, source: str
) -> AdContext:
    """A pixel's query (user sync, conversions) as an AdContext without imps, so that consent
    is decided by the same policy as an ad request's. Raises ValueError naming a bad
    parameter."""
    try:
        gpp_sid = tuple(int(s) for s in query.get("gpp_sid", "").split(",") if s)
    except ValueError:
        raise ValueError("`gpp_sid` must be comma-separated numbers") from None
    lmt = int_param(query, "lmt")
    client = scope.get("client")
    return AdContext(
        request_id=request_id,
        source=source,
        placement_key="",
        imps=[],
        device=DeviceInfo(
            ua=header(scope, b"user-agent"),
            ip=client[0] if client else None,
            ifa=query.get("ifa") or None,
            lmt=lmt,
        ),
        user_id=query.get("uid") or None,
        privacy=PrivacySignals(
            gdpr=int_param(query, "gdpr"),
            tc_string=query.get("gdpr_consent") or None,
            us_privacy=query.get("us_privacy") or None,
            gpp=query.get("gpp") or None,
            gpp_sid=gpp_sid,
            coppa=int_param(query, "coppa"),
            gpc=header(scope, b"sec-gpc"),
            lmt=lmt,
        ),
        now=time.time(),
    )
