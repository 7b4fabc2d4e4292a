"""Shared by the buyer pool's tests: a pool against the loopback buyers of `buyer_server`,
the ad context and buyer snapshot they are called with, and one round of calls. The
`buyer` and `start_buyer` fixtures are in this folder's conftest."""

import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from django.conf import settings

from compliance.policy import PrivacySignals, evaluate
from serving.buyers.outcomes import BuyerRound
from serving.buyers.pool import BuyerPool
from serving.context import AdContext, DeviceInfo, Geo, Imp
from serving.netguard import FetchPolicy
from serving.snapshot import BuyerSnap
from tests.conftest import run
from tests.serving.buyer_server import LoopbackBuyer

# Test buyers listen on 127.0.0.1, which serving refuses to fetch from unless allowed.
LOOPBACK = FetchPolicy.of(["127.0.0.0/8"])
FX = {"EUR": Decimal("1.10"), "GBP": Decimal("1.25")}
FLOOR = Decimal("0.50")
IMP = Imp(id="1", sizes=("300x250",), bidfloor=FLOOR)


def context(privacy: PrivacySignals | None = None, **overrides: Any) -> AdContext:
    privacy = privacy or PrivacySignals()
    fields: dict[str, Any] = {
        "request_id": "req-1",
        "source": "openrtb",
        "placement_key": "placement-key",
        "imps": [IMP],
        "device": DeviceInfo(
            ua="Mozilla/5.0",
            ip="203.0.113.77",
            ipv6="2001:db8:abcd:12ff::1",
            ifa="6d92078a-8246-4ba4-ae5b-76104861e7dc",
            devicetype=2,
        ),
        "geo": Geo(country="DE", lat=52.516274, lon=13.377704, source="request"),
        "domain": "news.example",
        "page": "https://news.example/story",
        "user_id": "user-1",
        "buyer_uid": "buyer-uid-1",
        "tmax": 200,
        "privacy": privacy,
        "permissions": evaluate(privacy, settings.GVL_VENDOR_ID),
    }
    fields.update(overrides)
    return AdContext(**fields)


def snap(buyer: LoopbackBuyer | str, buyer_id: int = 1, **overrides: Any) -> BuyerSnap:
    fields: dict[str, Any] = {
        "id": buyer_id,
        "name": f"buyer-{buyer_id}",
        "endpoint": buyer if isinstance(buyer, str) else buyer.endpoint,
        "gvl_vendor_id": None,
        "timeout_ms": 250,
        "qps_cap": 0,
        "currency": "USD",
        "supports_coppa": False,
    }
    fields.update(overrides)
    return BuyerSnap(**fields)


def with_pool[T](scenario: Callable[[BuyerPool], Awaitable[T]], **options: Any) -> T:
    async def go() -> T:
        options.setdefault("fetch_policy", LOOPBACK)
        pool = BuyerPool(currency="USD", fx=FX, **options)
        try:
            return await scenario(pool)
        finally:
            await pool.close()

    result: T = run(go())
    return result


async def one_round(
    pool: BuyerPool, buyers: list[BuyerSnap], ctx: AdContext | None = None, budget: float = 0.3
) -> BuyerRound:
    ctx = ctx or context()
    return await pool.solicit(ctx, buyers, ctx.imps, time.monotonic() + budget)


def solicit_once(
    buyers: list[BuyerSnap], ctx: AdContext | None = None, **options: Any
) -> tuple[BuyerRound, dict[str, float]]:
    async def scenario(pool: BuyerPool) -> tuple[BuyerRound, dict[str, float]]:
        result = await one_round(pool, buyers, ctx)
        return result, pool.stats()

    return with_pool(scenario, **options)


def counts(stats: dict[str, float]) -> dict[str, float]:
    """The outcome counters, without the latency fields (their values vary)."""
    return {k: v for k, v in stats.items() if "latency" not in k}
