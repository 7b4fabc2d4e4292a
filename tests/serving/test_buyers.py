"""External OpenRTB buyers: the pool against real HTTP buyers on 127.0.0.1 (its limits:
test_buyer_limits.py; the Buyer model and its admin: test_buyer_admin.py)."""

import time
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from compliance.policy import PrivacySignals, evaluate
from serving.buyers.bids import ExternalBid
from serving.buyers.counters import parse_buyer_stats
from serving.buyers.outcomes import BuyerRound
from serving.buyers.pool import BuyerPool
from serving.context import AdContext, DealRequest, DeviceInfo, Geo, Imp
from serving.keys import RedisKeys
from serving.macros import macro_values
from serving.netguard import FetchPolicy
from serving.openrtb import LOSS_OUTBID
from serving.snapshot import BuyerSnap
from tests.compliance.tcf_encoder import Core, VendorSection, encode_core
from tests.conftest import run
from tests.serving.buyer_server import AUCTION_MACROS, Behaviour, LoopbackBuyer, closed_port

# Test buyers listen on 127.0.0.1, which serving refuses to fetch from unless allowed.
LOOPBACK = FetchPolicy.of(["127.0.0.0/8"])
FX = {"EUR": Decimal("1.10"), "GBP": Decimal("1.25")}
FLOOR = Decimal("0.50")
IMP = Imp(id="1", sizes=("300x250",), bidfloor=FLOOR)
# How far past its deadline a round may return: scheduling noise, not a waiting budget.
# How late past its deadline a round may return on a loaded machine: far less than the
# hung buyer's own timeout (1 s), which a round waiting for it would take.
SLACK = 0.4
CONSENTED_VENDOR, UNCONSENTED_VENDOR = 77, 88


# -- helpers ---------------------------------------------------------------------------


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


def gdpr_consent(*vendors: int) -> PrivacySignals:
    tc = encode_core(
        Core(
            purposes_consent=frozenset({1, 2, 3, 4, 7}),
            vendor_consents=VendorSection(
                max_id=settings.GVL_VENDOR_ID, ids=frozenset({settings.GVL_VENDOR_ID, *vendors})
            ),
        )
    )
    return PrivacySignals(gdpr=1, tc_string=tc)


@pytest.fixture
def start_buyer() -> Iterator[Callable[..., LoopbackBuyer]]:
    started: list[LoopbackBuyer] = []

    def start(behaviour: Behaviour | None = None) -> LoopbackBuyer:
        server = LoopbackBuyer(behaviour)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def buyer(start_buyer: Callable[..., LoopbackBuyer]) -> LoopbackBuyer:
    return start_buyer()


# -- valid bids ------------------------------------------------------------------------


def test_a_valid_bid_enters_the_round_converted_into_the_platform_currency(
    buyer: LoopbackBuyer,
) -> None:
    buyer.behaviour = Behaviour(currency="EUR", bid={"price": "2.00"})

    result, stats = solicit_once([snap(buyer, currency="EUR")])

    [bid] = result.bids
    assert bid == ExternalBid(
        buyer_id=1,
        buyer_name="buyer-1",
        imp_id="1",
        price=Decimal("2.200000"),
        original_price=Decimal("2.00"),
        adm="<div>buyer ad</div>",
        adomain=("brand.example",),
        crid="creative-1",
        cid="campaign-1",
        cat=("IAB1",),
        w=300,
        h=250,
        mtype=1,
        dealid=None,
        nurl=f"{buyer.base_url}/win?{AUCTION_MACROS}",
        burl=f"{buyer.base_url}/bill?{AUCTION_MACROS}",
        lurl=f"{buyer.base_url}/loss?reason=${{AUCTION_LOSS}}&min=${{AUCTION_MIN_TO_WIN}}",
        bid_id="bid-1",
        seat="seat-1",
        currency="EUR",
        fx_rate=Decimal("1.10"),
    )
    assert bid.in_buyer_currency(Decimal("2.20")) == Decimal("2.000000")
    assert counts(stats) == {"1:request": 1, "1:bid": 1}
    assert stats["1:latency_count"] == 1
    [outcome] = result.outcomes
    assert (outcome.outcome, outcome.called, outcome.status, outcome.bids) == ("bid", True, 200, 1)
    assert outcome.latency_ms is not None and outcome.latency_ms > 0


def test_the_floor_is_compared_with_the_converted_price(buyer: LoopbackBuyer) -> None:
    # EUR 0.47 is below a 0.50 floor as a number but worth USD 0.517.
    buyer.behaviour = Behaviour(currency="EUR", bid={"price": "0.47"})

    result, _ = solicit_once([snap(buyer, currency="EUR")])

    assert [b.price for b in result.bids] == [Decimal("0.517000")]


def test_one_bad_bid_does_not_spoil_the_good_one_beside_it(buyer: LoopbackBuyer) -> None:
    buyer.behaviour = Behaviour(extra_bids=[{"price": 0}, {"impid": "nope"}])

    result, stats = solicit_once([snap(buyer)])

    assert [b.bid_id for b in result.bids] == ["bid-1"]
    assert counts(stats) == {"1:request": 1, "1:bid": 1, "1:bad_price": 1, "1:unknown_imp": 1}
    assert result.outcomes[0].dropped == {"bad_price": 1, "unknown_imp": 1}


def test_the_explain_view_lists_every_buyer(
    buyer: LoopbackBuyer, start_buyer: Callable[..., LoopbackBuyer]
) -> None:
    silent = start_buyer(Behaviour(status=204))

    result, _ = solicit_once(
        [snap(buyer), snap(silent, 2), snap(buyer, 3, supports_coppa=True)],
        context(privacy=PrivacySignals(coppa=1)),
    )

    assert [(o["buyer"], o["outcome"], o["called"]) for o in result.explain()] == [
        (1, "coppa", False),
        (2, "coppa", False),
        (3, "bid", True),
    ]


# -- drops -----------------------------------------------------------------------------

BLOCKS: dict[str, Any] = {"badv": frozenset({"blocked.example"}), "bcat": frozenset({"IAB7"})}
DROPS = [
    pytest.param(Behaviour(status=204), "no_bid", id="204"),
    pytest.param(Behaviour(no_bid=True), "no_bid", id="empty-seatbid"),
    pytest.param(Behaviour(raw=b"{}"), "no_bid", id="empty-object"),
    pytest.param(Behaviour(status=500), "http_500", id="500"),
    pytest.param(Behaviour(status=400), "http_400", id="400"),
    pytest.param(Behaviour(raw=b'{"id": "req-1", "seatbid": [{'), "invalid_json", id="broken"),
    pytest.param(
        Behaviour(raw=b'{"id": "req-1", "seatbid": [{"bid": [{"id": "b"}]}]}'),
        "invalid_json",
        id="schema",
    ),
    pytest.param(Behaviour(response_id="someone-else"), "wrong_id", id="wrong-id"),
    pytest.param(Behaviour(bid={"impid": "no-such-imp"}), "unknown_imp", id="unknown-imp"),
    pytest.param(Behaviour(bid={"price": 0}), "bad_price", id="zero-price"),
    pytest.param(Behaviour(bid={"price": -1.5}), "bad_price", id="negative-price"),
    pytest.param(Behaviour(currency="EUR"), "wrong_currency", id="not-the-buyers-currency"),
    pytest.param(Behaviour(bid={"adm": None, "nurl": None}), "no_markup", id="no-markup"),
    pytest.param(Behaviour(bid={"adomain": ["shop.Blocked.example"]}), "blocked_domain", id="badv"),
    pytest.param(Behaviour(bid={"cat": ["IAB1", "IAB7-39"]}), "blocked_category", id="bcat"),
    pytest.param(Behaviour(bid={"dealid": "not-offered"}), "invalid_deal", id="unknown-deal"),
    pytest.param(Behaviour(bid={"price": 0.49}), "below_floor", id="below-floor"),
]


@pytest.mark.parametrize(("behaviour", "reason"), DROPS)
def test_an_invalid_answer_is_dropped_and_counted(
    buyer: LoopbackBuyer, behaviour: Behaviour, reason: str
) -> None:
    buyer.behaviour = behaviour

    result, stats = solicit_once([snap(buyer)], context(**BLOCKS))

    assert result.bids == []
    assert result.outcomes[0].outcome == reason
    assert counts(stats) == {"1:request": 1, f"1:{reason}": 1}


def test_a_buyer_whose_currency_has_no_fx_rate_is_not_called(buyer: LoopbackBuyer) -> None:
    result, stats = solicit_once([snap(buyer, currency="JPY")])

    assert result.outcomes[0].outcome == "no_fx_rate"
    assert buyer.request_count() == 0
    assert counts(stats) == {"1:no_fx_rate": 1}


def test_a_buyer_is_asked_for_bids_in_its_own_currency_with_floors_converted(
    buyer: LoopbackBuyer,
) -> None:
    deal = DealRequest("deal-1", bidfloor=Decimal("3.30"))
    imp = Imp(id="1", sizes=("300x250",), bidfloor=FLOOR, deals=(deal,))

    solicit_once([snap(buyer, currency="EUR")], context(imps=[imp]))

    sent = buyer.last.body
    assert sent["cur"] == ["EUR"]
    # USD 0.50 at 1.10 is EUR 0.4545..., rounded up so that no bid at it is below the floor.
    [sent_imp] = sent["imp"]
    assert (sent_imp["bidfloor"], sent_imp["bidfloorcur"]) == (0.454546, "EUR")
    [sent_deal] = sent_imp["pmp"]["deals"]
    assert (sent_deal["bidfloor"], sent_deal["bidfloorcur"]) == (3, "EUR")


def test_a_buyer_that_cannot_be_reached_counts_as_an_error() -> None:
    result, stats = solicit_once([snap(f"http://127.0.0.1:{closed_port()}/bid")])

    assert result.outcomes[0].outcome == "error"
    assert counts(stats) == {"1:request": 1, "1:error": 1}


PMP_IMP = Imp(
    id="1",
    sizes=("300x250",),
    bidfloor=FLOOR,
    private_auction=True,
    deals=(
        DealRequest("deal-1", bidfloor=Decimal("3.00")),
        DealRequest("deal-2", bidfloor=Decimal("1.00"), wseat=("seat-9",)),
    ),
)


@pytest.mark.parametrize(
    ("bid", "outcome"),
    [
        pytest.param({}, "invalid_deal", id="no-deal-on-a-private-auction"),
        pytest.param({"dealid": "deal-2"}, "invalid_deal", id="seat-not-allowed"),
        pytest.param({"dealid": "deal-1", "price": 2.0}, "below_floor", id="below-deal-floor"),
        pytest.param({"dealid": "deal-1", "price": 3.25}, "bid", id="on-the-deal"),
    ],
)
def test_deal_rules(buyer: LoopbackBuyer, bid: dict[str, Any], outcome: str) -> None:
    buyer.behaviour = Behaviour(bid=bid)

    result, _ = solicit_once([snap(buyer)], context(imps=[PMP_IMP]))

    assert result.outcomes[0].outcome == outcome
    assert [b.dealid for b in result.bids] == (["deal-1"] if outcome == "bid" else [])
    assert buyer.last.body["imp"][0]["pmp"]["private_auction"] == 1


# -- time ------------------------------------------------------------------------------


def test_a_late_buyer_is_dropped_without_holding_the_round_past_the_deadline(
    buyer: LoopbackBuyer, start_buyer: Callable[..., LoopbackBuyer]
) -> None:
    hung = start_buyer(Behaviour(hang=True))
    ctx = context()

    async def scenario(pool: BuyerPool) -> tuple[BuyerRound, float, float, dict[str, float]]:
        deadline = time.monotonic() + 0.08
        result = await pool.solicit(
            ctx, [snap(buyer), snap(hung, 2, timeout_ms=1000)], ctx.imps, deadline
        )
        return result, time.monotonic(), deadline, pool.stats()

    result, returned, deadline, stats = with_pool(scenario)

    assert returned <= deadline + SLACK
    assert [b.buyer_id for b in result.bids] == [1]
    assert [o.outcome for o in result.outcomes] == ["bid", "timeout"]
    assert counts(stats) == {"1:request": 1, "1:bid": 1, "2:request": 1, "2:timeout": 1}
    assert "2:latency_count" not in stats  # no answer, no latency sample


def test_a_buyer_is_cut_off_at_its_own_timeout(buyer: LoopbackBuyer) -> None:
    # The buyer answers after 1.5 s, well inside the round's 3 s: only its own 30 ms timeout
    # can make it a timeout (waiting for it would have given a bid).
    buyer.behaviour = Behaviour(delay_ms=1500)

    async def scenario(pool: BuyerPool) -> BuyerRound:
        return await one_round(pool, [snap(buyer, timeout_ms=30)], budget=3.0)

    result = with_pool(scenario)

    assert result.outcomes[0].outcome == "timeout"
    assert result.bids == []


def test_buyers_are_called_in_parallel(start_buyer: Callable[..., LoopbackBuyer]) -> None:
    # Each buyer takes 0.8 s and the round allows 1.2 s: called one after the other, the
    # second would miss the deadline; called together, both bid.
    slow = [start_buyer(Behaviour(delay_ms=800)) for _ in range(2)]

    async def scenario(pool: BuyerPool) -> BuyerRound:
        return await one_round(
            pool, [snap(s, n + 1, timeout_ms=1200) for n, s in enumerate(slow)], budget=1.2
        )

    result = with_pool(scenario)

    assert [o.outcome for o in result.outcomes] == ["bid", "bid"]
    assert len(result.bids) == 2


def test_the_outbound_tmax_fits_inside_the_inbound_one_and_the_headers_say_openrtb_2_6(
    buyer: LoopbackBuyer,
) -> None:
    ctx = context(tmax=200)

    async def scenario(pool: BuyerPool) -> BuyerRound:
        # The orchestrator keeps part of the caller's 200 ms for itself.
        return await pool.solicit(ctx, [snap(buyer)], ctx.imps, time.monotonic() + 0.15)

    with_pool(scenario)

    received = buyer.last
    assert 0 < received.body["tmax"] < 150  # below the deadline, so below the caller's 200
    assert received.headers["Content-Type"] == "application/json"
    assert received.headers["x-openrtb-version"] == "2.6"
    assert received.body["id"] == "req-1"


def test_a_buyer_is_not_called_when_too_little_time_is_left(buyer: LoopbackBuyer) -> None:
    ctx = context()

    async def scenario(pool: BuyerPool) -> BuyerRound:
        return await pool.solicit(ctx, [snap(buyer)], ctx.imps, time.monotonic() + 0.004)

    result = with_pool(scenario)

    assert result.outcomes[0].outcome == "no_time"
    assert buyer.request_count() == 0


def test_connections_to_a_buyer_are_kept_alive(buyer: LoopbackBuyer) -> None:
    async def scenario(pool: BuyerPool) -> None:
        for _ in range(3):
            await one_round(pool, [snap(buyer)])

    with_pool(scenario)

    assert len({r.client_port for r in buyer.requests}) == 1


# -- privacy ---------------------------------------------------------------------------


def test_coppa_traffic_goes_only_to_buyers_that_support_it(
    buyer: LoopbackBuyer, start_buyer: Callable[..., LoopbackBuyer]
) -> None:
    child_safe = start_buyer()

    result, stats = solicit_once(
        [snap(buyer), snap(child_safe, 2, supports_coppa=True)],
        context(privacy=PrivacySignals(coppa=1)),
    )

    assert [o.outcome for o in result.outcomes] == ["coppa", "bid"]
    assert buyer.request_count() == 0
    sent = child_safe.last.body
    assert sent["regs"]["coppa"] == 1
    assert "id" not in sent.get("user", {}) and "ifa" not in sent["device"]
    assert counts(stats)["1:coppa"] == 1


def test_a_buyer_without_consent_for_its_vendor_id_is_not_called(
    start_buyer: Callable[..., LoopbackBuyer],
) -> None:
    consented, unconsented, unlisted = start_buyer(), start_buyer(), start_buyer()
    privacy = gdpr_consent(CONSENTED_VENDOR)

    result, stats = solicit_once(
        [
            snap(consented, 1, gvl_vendor_id=CONSENTED_VENDOR),
            snap(unconsented, 2, gvl_vendor_id=UNCONSENTED_VENDOR),
            snap(unlisted, 3, gvl_vendor_id=None),
        ],
        context(privacy=privacy),
    )

    assert [(o.outcome, o.detail) for o in result.outcomes] == [
        ("bid", ""),
        ("consent", "buyer_no_purpose_2_basis"),
        ("consent", "buyer_has_no_gvl_id"),
    ]
    assert (unconsented.request_count(), unlisted.request_count()) == (0, 0)
    assert counts(stats) == {"1:request": 1, "1:bid": 1, "2:consent": 1, "3:consent": 1}
    # With consent for purposes 3 and 4 the buyer gets the ids, and the TC string.
    sent = consented.last.body
    assert sent["user"]["id"] == "user-1"
    assert sent["user"]["buyeruid"] == "buyer-uid-1"
    assert sent["user"]["consent"] == privacy.tc_string
    assert sent["device"]["ifa"] == "6d92078a-8246-4ba4-ae5b-76104861e7dc"
    assert sent["regs"]["gdpr"] == 1


def test_no_buyer_is_called_without_a_tc_string_under_gdpr(buyer: LoopbackBuyer) -> None:
    result, _ = solicit_once(
        [snap(buyer, gvl_vendor_id=CONSENTED_VENDOR)], context(privacy=PrivacySignals(gdpr=1))
    )

    assert result.outcomes[0].outcome == "consent"
    assert buyer.request_count() == 0


def test_without_id_permission_the_buyer_gets_an_anonymised_request(
    buyer: LoopbackBuyer,
) -> None:
    # Limit ad tracking: still served and sold, but no ids and coarse location.
    solicit_once([snap(buyer)], context(privacy=PrivacySignals(lmt=1)))

    sent = buyer.last.body
    assert {"id", "buyeruid"}.isdisjoint(sent.get("user", {}))
    assert "ifa" not in sent["device"]
    assert sent["device"]["ip"] == "203.0.113.0"
    assert sent["device"]["ipv6"] == "2001:db8:abcd:1200::"
    assert (sent["device"]["geo"]["lat"], sent["device"]["geo"]["lon"]) == (52.52, 13.38)


def test_with_consent_the_buyer_gets_ids_and_precise_geo(buyer: LoopbackBuyer) -> None:
    solicit_once([snap(buyer)], context())

    sent = buyer.last.body
    assert (sent["user"]["id"], sent["user"]["buyeruid"]) == ("user-1", "buyer-uid-1")
    assert sent["device"]["ifa"] == "6d92078a-8246-4ba4-ae5b-76104861e7dc"
    assert sent["device"]["ip"] == "203.0.113.77"
    assert (sent["device"]["geo"]["lat"], sent["device"]["geo"]["lon"]) == (52.516274, 13.377704)


# -- notices ---------------------------------------------------------------------------


def test_win_billing_and_loss_notices_are_fired_with_macros_substituted(
    buyer: LoopbackBuyer,
) -> None:
    buyer.behaviour = Behaviour(bid={"price": "2.00"})

    async def scenario(pool: BuyerPool) -> None:
        [bid] = (await one_round(pool, [snap(buyer)])).bids
        won = macro_values(
            auction_id="req-1",
            bid_id=bid.bid_id,
            imp_id=bid.imp_id,
            seat_id=bid.seat,
            ad_id=None,
            currency=bid.currency,
            price=bid.in_buyer_currency(Decimal("1.23")),
        )
        lost = macro_values(
            auction_id="req-1",
            bid_id=bid.bid_id,
            imp_id=bid.imp_id,
            seat_id=bid.seat,
            ad_id=None,
            price=None,
            currency=bid.currency,
            loss=LOSS_OUTBID,
            min_to_win=Decimal("2.51"),
        )
        assert bid.nurl and bid.burl and bid.lurl
        pool.notify(bid.nurl, won, buyer_id=bid.buyer_id)
        pool.notify(bid.burl, won, buyer_id=bid.buyer_id)
        pool.notify(bid.lurl, lost, buyer_id=bid.buyer_id)
        await pool.drain_notices()

    with_pool(scenario)

    assert sorted(buyer.notice_paths()) == [
        "/bill?price=1.23&cur=USD&imp=1",
        "/loss?reason=102&min=2.51",
        "/win?price=1.23&cur=USD&imp=1",
    ]


def test_failed_notices_are_counted(buyer: LoopbackBuyer) -> None:
    buyer.behaviour = Behaviour(notice_status=500)

    async def scenario(pool: BuyerPool) -> dict[str, float]:
        pool.notify(
            f"{buyer.base_url}/win?p=${{AUCTION_PRICE}}", {"AUCTION_PRICE": "1"}, buyer_id=4
        )
        pool.notify(f"http://127.0.0.1:{closed_port()}/win", {}, buyer_id=4)
        pool.notify("javascript:alert(1)", {}, buyer_id=4)
        await pool.drain_notices()
        return pool.stats()

    assert with_pool(scenario) == {"4:notice_error": 3}
    assert buyer.notice_paths() == ["/win?p=1"]


def test_notices_in_flight_are_bounded(buyer: LoopbackBuyer) -> None:
    buyer.behaviour = Behaviour(notice_delay_ms=40)

    async def scenario(pool: BuyerPool) -> dict[str, float]:
        for n in range(3):
            pool.notify(f"{buyer.base_url}/win?n={n}", {}, buyer_id=1)
        await pool.drain_notices()
        return pool.stats()

    assert with_pool(scenario, max_notices_in_flight=2) == {"1:notice_dropped": 1}
    assert sorted(buyer.notice_paths()) == ["/win?n=0", "/win?n=1"]


def test_a_bid_without_adm_gets_its_markup_from_the_win_notice(buyer: LoopbackBuyer) -> None:
    buyer.behaviour = Behaviour(bid={"adm": None}, notice_body="<div>markup from nurl</div>")

    async def scenario(pool: BuyerPool) -> tuple[str | None, str | None, dict[str, float]]:
        [bid] = (await one_round(pool, [snap(buyer)])).bids
        assert bid.adm is None and bid.nurl
        values = {"AUCTION_PRICE": "1.01", "AUCTION_CURRENCY": "USD", "AUCTION_IMP_ID": "1"}
        markup = await pool.fetch_markup(bid.nurl, values, time.monotonic() + 0.2, buyer_id=1)
        buyer.behaviour = Behaviour(notice_status=404)
        missing = await pool.fetch_markup(bid.nurl, values, time.monotonic() + 0.2, buyer_id=1)
        return markup, missing, pool.stats()

    markup, missing, stats = with_pool(scenario)

    assert (markup, missing) == ("<div>markup from nurl</div>", None)
    assert buyer.notice_paths() == ["/win?price=1.01&cur=USD&imp=1"] * 2
    assert counts(stats) == {"1:request": 1, "1:bid": 1, "1:markup_error": 1}


# -- counters in Redis -----------------------------------------------------------------


def test_flush_stats_adds_the_counters_to_the_days_hash_and_clears_them(
    buyer: LoopbackBuyer, redis_client: Redis
) -> None:
    keys = RedisKeys(settings.REDIS_KEY_PREFIX)
    day = "20260315"

    async def scenario(pool: BuyerPool) -> list[dict[str, float]]:
        redis = AsyncRedis.from_url(settings.REDIS_URL)
        left = []
        try:
            for _ in range(2):
                await one_round(
                    pool,
                    [snap(buyer), snap(buyer, 2, supports_coppa=True)],
                    context(privacy=PrivacySignals(coppa=1)),
                )
                await pool.flush_stats(redis, keys, day)
                left.append(pool.stats())
        finally:
            await redis.aclose()
        return left

    left = with_pool(scenario)

    assert left == [{}, {}]
    stored = parse_buyer_stats(redis_client.hgetall(keys.buyer_stats(day)))
    assert stored[1] == {"coppa": 2}
    assert {k: v for k, v in stored[2].items() if k != "latency_ms_sum"} == {
        "request": 2,
        "bid": 2,
        "latency_count": 2,
    }
    assert stored[2]["latency_ms_sum"] >= 0
    assert redis_client.ttl(keys.buyer_stats(day)) > 0
