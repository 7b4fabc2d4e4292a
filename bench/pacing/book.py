"""The simulator's book of campaigns, their traffic history, and the day's budgets and
counters between runs."""

import argparse
import io
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from bench.pacing.day import DIURNAL, HOURS, PLACEMENTS, SIZES, hour_volume

HISTORY_NOISE = 0.04


@dataclass(frozen=True)
class Plan:
    """A campaign of the book: its budget is `share` of the day's requests at its bid."""

    label: str
    bid: str
    share: float
    tier: str = "price"
    mode: str = "even"
    countries: tuple[str, ...] = ()
    devices: tuple[int, ...] = ()
    sizes: tuple[str, ...] = ("300x250", "728x90")
    placements: tuple[int, ...] = ()  # indexes into PLACEMENTS
    dynamic_min: str | None = None
    lifetime_days: int | None = None  # a lifetime budget of this many days' budgets
    li_budget_share: float | None = None  # a second line item with a budget of its own
    note: str = ""


# Budgets are shares of the day's requests, so the book scales with --peak-qps/--minutes.
BOOK = [
    Plan("Sponsor US", "7.00", 0.08, tier="guaranteed", countries=("US",),
         note="guaranteed tier, US only"),
    Plan("Brand all", "9.00", 0.10, note="top bid, all traffic"),
    Plan("Frontloaded DE", "8.00", 0.04, mode="frontloaded", countries=("DE",)),
    Plan("Mobile", "7.50", 0.07, devices=(4,), note="phones only"),
    Plan("Leaderboard", "6.50", 0.06, sizes=("728x90",), note="728x90 only"),
    Plan("Article only", "6.00", 0.05, placements=(1,), note="one placement"),
    Plan("Dynamic bid", "8.50", 0.07, dynamic_min="4.00", note="dynamic down to 4.00"),
    Plan("Lifetime", "7.00", 0.06, lifetime_days=5, note="lifetime budget over 5 days"),
    Plan("Two lines", "8.00", 0.08, li_budget_share=0.03, note="a line item with its own budget"),
    Plan("ASAP", "4.50", 0.03, mode="asap", note="ASAP by choice"),
    Plan("Starved GB", "2.50", 0.12, countries=("GB",), note="low bid, too little traffic"),
]  # fmt: skip


HOUSE_BID = "0.50"


@dataclass
class SimCampaign:
    plan: Plan
    campaign_id: int
    # run → the day's budget (a lifetime budget's share for today, by the controller's rule)
    budgets: dict[str, Decimal]
    hard_budget: dict[str, Decimal]  # run → the budget serving enforces in that run
    line_items: list[int] = field(default_factory=list)
    capped_line_item: tuple[int, Decimal] | None = None  # (id, its daily budget)


def expected_requests(args: argparse.Namespace) -> float:
    mean = sum(DIURNAL) / len(DIURNAL)
    return args.peak_qps * mean * args.minutes * 60


def build_book(args: argparse.Namespace, day_start: datetime) -> list[SimCampaign]:
    from django.core.files.base import ContentFile
    from PIL import Image

    from campaigns import services
    from campaigns.models import Advertiser, Placement, Publisher
    from creatives.models import Creative, ReviewStatus

    publisher = Publisher.objects.create(name="Sim publisher")
    placements = [
        Placement.objects.create(publisher=publisher, name=name, sizes=[s for s, _ in SIZES])
        for name, _ in PLACEMENTS
    ]
    requests_per_day = expected_requests(args)

    def creative(advertiser: Advertiser, size: str) -> Creative:
        w, h = (int(x) for x in size.split("x"))
        buf = io.BytesIO()
        Image.new("RGB", (w, h), (30, 80, 160)).save(buf, format="PNG")
        made = Creative(
            advertiser=advertiser, name=f"{advertiser.name} {size}",
            click_url="https://shop.example/landing",
            image=ContentFile(buf.getvalue(), name="banner.png"), status=ReviewStatus.APPROVED,
        )  # fmt: skip
        made.full_clean()
        made.save()
        return made

    out = []
    start = day_start - timedelta(days=10)
    for n, plan in enumerate([*BOOK, Plan("House", HOUSE_BID, 0.0, tier="house")]):
        advertiser = Advertiser.objects.create(name=f"Sim advertiser {n}: {plan.label}")
        bid = Decimal(plan.bid)
        if plan.label == "House":
            daily = Decimal("1000000")
        else:
            daily = (Decimal(plan.share * requests_per_day) * bid / 1000).quantize(Decimal("0.01"))
        fields: dict[str, Any] = {}
        budget = daily
        if plan.lifetime_days:
            fields["lifetime_budget"] = daily * plan.lifetime_days
            fields["end_at"] = day_start + timedelta(days=plan.lifetime_days)
            daily = daily * 2  # the lifetime budget's share binds, not the daily budget
        campaign = services.create_campaign(
            advertiser=advertiser, name=plan.label, start_at=start, daily_budget=daily,
            pacing_mode=plan.mode, priority_tier=plan.tier, **fields,
        )  # fmt: skip
        sim = SimCampaign(
            plan, campaign.pk, {"paced": budget, "naive": budget}, {"paced": budget, "naive": daily}
        )
        sizes = list(plan.sizes)
        line_specs: list[tuple[str, Decimal | None]] = [(plan.bid, None)]
        if plan.li_budget_share:
            capped = (Decimal(plan.li_budget_share * requests_per_day) * bid / 1000).quantize(
                Decimal("0.01")
            )
            line_specs = [(plan.bid, capped), (str(bid - Decimal("2.50")), None)]
        for li_bid, li_budget in line_specs:
            extra: dict[str, Any] = {}
            if plan.dynamic_min:
                extra = {"bid_strategy": "dynamic_down", "min_bid": Decimal(plan.dynamic_min)}
            li = services.create_line_item(
                campaign=campaign, name=f"{plan.label} {li_bid}", bid=Decimal(li_bid),
                sizes=sizes, countries=list(plan.countries), device_types=list(plan.devices),
                creatives=[creative(advertiser, s) for s in sizes],
                placements=[placements[i] for i in plan.placements],
                daily_budget=li_budget, **extra,
            )  # fmt: skip
            sim.line_items.append(li.pk)
            if li_budget is not None:
                sim.capped_line_item = (li.pk, li_budget)
        services.activate_campaign(campaign)
        if plan.label != "House":
            out.append(sim)
    return out


def seed_history(day_start: datetime, args: argparse.Namespace, rng: random.Random) -> None:
    """Seven past days of request counts per placement and hour, with the diurnal curve: what
    the controller learns the day's traffic shape from."""
    from campaigns.models import Placement
    from reporting.models import HourlyRollup

    per_hour = expected_requests(args) / sum(DIURNAL)
    rows = []
    for placement, (_, weight) in zip(Placement.objects.order_by("id"), PLACEMENTS, strict=True):
        for day in range(1, 8):
            for hour in range(HOURS):
                # the hour's requests as the live traffic brings them (the curve between hour
                # midpoints), so the learned shape is the shape the day will have
                n = per_hour * hour_volume(hour) * weight / 100
                rows.append(
                    HourlyRollup(
                        hour=day_start - timedelta(days=day) + timedelta(hours=hour),
                        placement_id=placement.pk, line_item_id=0, campaign_id=0,
                        advertiser_id=0,
                        requests=max(0, round(n * rng.gauss(1, HISTORY_NOISE))),
                    )
                )  # fmt: skip
    HourlyRollup.objects.bulk_create(rows)


def seed_yesterday(
    sims: list[SimCampaign], campaigns: dict[int, Any], day_start: datetime, hours: float
) -> None:
    """Yesterday's counters as a paced day would have them `hours` before midnight: the
    campaigns have been live for days (the controller carries what it learnt across days).
    A new campaign's first hour is another matter: docs/pacing.md has those figures."""
    from campaigns.pacing.ledger import to_nanos
    from campaigns.pacing.services import days_left, schedule_for, spend_target
    from campaigns.snapshot import redis_client, redis_keys

    client, keys = redis_client(), redis_keys()
    at = day_start - timedelta(hours=hours)
    for s in sims:
        campaign = campaigns[s.campaign_id]
        sched = schedule_for(campaign, at)
        target = spend_target(campaign, Decimal(0), days_left(campaign, sched))
        # An ASAP campaign is seeded as far along as the traffic: in the paced market it does
        # not reach its budget (it bids below the paced campaigns and gets what they leave),
        # so it is still in the auction at night, setting the second price of those above.
        done = sched.traffic(at) if s.plan.mode == "asap" else sched.fraction(at)
        spent = {"s": int(to_nanos(target) * done)}
        if s.capped_line_item:
            li, li_budget = s.capped_line_item
            spent[f"s:{li}"] = int(to_nanos(li_budget) * done)
        client.hset(
            keys.spend(sched.day, campaign.pk), mapping={k: int(v) for k, v in spent.items()}
        )
        client.hset(keys.lifetime_spend(campaign.pk), mapping={k: int(v) for k, v in spent.items()})


def budget_today(campaign: Any, day_start: datetime) -> Decimal:
    """Today's budget by the controller's rule, after the run (the lifetime share counts
    what was spent before today)."""
    from campaigns.pacing.ledger import parse_counters, to_money
    from campaigns.pacing.services import days_left, schedule_for, spend_target
    from campaigns.snapshot import redis_client, redis_keys

    client, keys = redis_client(), redis_keys()
    sched = schedule_for(campaign, day_start)
    today = parse_counters(client.hgetall(keys.spend(sched.day, campaign.pk)))
    life = parse_counters(client.hgetall(keys.lifetime_spend(campaign.pk)))
    before = to_money(life.spend - today.spend)
    target = spend_target(campaign, before, days_left(campaign, sched))
    return target.quantize(Decimal("0.01"))


def reset_redis_and_day(day_start: datetime) -> None:
    """Between the two runs: no spend, pacing state or events left, no rollups of the day."""
    from django.conf import settings
    from django_redis import get_redis_connection

    from reporting.models import HourlyRollup

    client = get_redis_connection("default")
    prefix = settings.REDIS_KEY_PREFIX
    for pattern in ("spend:*", "exhausted:*", "pacing:*", "seen:*", "events"):
        keys = list(client.scan_iter(match=f"{prefix}{pattern}", count=1000))
        if keys:
            client.delete(*keys)
    HourlyRollup.objects.filter(hour__gte=day_start).delete()
