"""The reconciliation: Redis spend counters brought up to the rollups (the truth)."""

import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Sum

from campaigns.models import Campaign
from campaigns.pacing.ledger import Counters, Ledger, to_nanos
from campaigns.pacing.schedule import day_bounds
from campaigns.pacing.services.targets import ledger, live_campaigns
from campaigns.snapshot import redis_client, redis_keys
from reporting.lease import Lease, LeaseLost
from reporting.models import HourlyRollup
from serving.keys import local_day

log = logging.getLogger(__name__)


@dataclass
class ReconcileResult:
    campaigns: int = 0
    repaired: int = 0  # counters raised to the rollups
    released: int = 0  # pending wins released (never rendered)
    skipped: bool = False  # another reconciliation held the lease


@dataclass
class _Truth:
    spend: int = 0
    impressions: int = 0
    clicks: int = 0


# Rollups of an hour can still arrive after it ends (ingestion lags seconds, a backlog more):
# hours this long before the start of today are settled and summed once a day; the rest are
# read at every reconciliation.
SETTLED = timedelta(hours=2)


def _truth(
    campaigns: list[Campaign], now: datetime
) -> tuple[dict[int, dict[int, _Truth]], dict[int, dict[int, _Truth]]]:
    """(today, lifetime) per campaign and line item, from the rollups. The recent rows (from
    `SETTLED` before the start of today on; the hour is the rollups' leading index column)
    are read each time; what came before them is summed once a day per campaign and kept in
    Redis."""
    today: dict[int, dict[int, _Truth]] = defaultdict(lambda: defaultdict(_Truth))
    life: dict[int, dict[int, _Truth]] = defaultdict(lambda: defaultdict(_Truth))
    bounds = {c.pk: day_bounds(now, c.advertiser.time_zone) for c in campaigns}
    for campaign_id, base in _settled(bounds).items():
        for li, (s, i, k) in base.items():
            t = life[campaign_id][li]
            t.spend, t.impressions, t.clicks = s, i, k
    earliest = min(start for start, _ in bounds.values()) - SETTLED
    rows = (
        HourlyRollup.objects.filter(campaign_id__in=list(bounds), hour__gte=earliest)
        .values("campaign_id", "line_item_id", "hour")
        .annotate(s=Sum("spend"), i=Sum("impressions"), k=Sum("clicks"))
        .order_by()
    )
    for row in rows:
        campaign_id, li = row["campaign_id"], row["line_item_id"]
        start, end = bounds[campaign_id]
        if row["hour"] < start - SETTLED:
            continue  # in the settled sum already
        spend, impressions, clicks = to_nanos(row["s"]), row["i"] or 0, row["k"] or 0
        tallies = [life[campaign_id][li]]
        if start <= row["hour"] < end:
            tallies.append(today[campaign_id][li])
        for t in tallies:
            t.spend += spend
            t.impressions += impressions
            t.clicks += clicks
    return today, life


def _settled(
    bounds: dict[int, tuple[datetime, datetime]],
) -> dict[int, dict[int, tuple[int, int, int]]]:
    """Each campaign's rollups of the hours before `SETTLED` before the start of its local
    today, per line item: (spend, impressions, clicks), summed once a day and kept in Redis
    (two days)."""
    client, keys = redis_client(), redis_keys()
    names = {c: keys.lifetime_base(c, start.strftime("%Y%m%d")) for c, (start, _) in bounds.items()}
    cached = dict(zip(names, client.mget(list(names.values())), strict=True))
    out: dict[int, dict[int, tuple[int, int, int]]] = {}
    missing: dict[datetime, list[int]] = defaultdict(list)
    for campaign_id, raw in cached.items():
        if raw is None:
            missing[bounds[campaign_id][0] - SETTLED].append(campaign_id)
        else:
            out[campaign_id] = {int(li): tuple(v) for li, v in json.loads(raw).items()}
    for before, ids in missing.items():
        found: dict[int, dict[int, tuple[int, int, int]]] = {c: {} for c in ids}
        for row in (
            HourlyRollup.objects.filter(campaign_id__in=ids, hour__lt=before)
            .values("campaign_id", "line_item_id")
            .annotate(s=Sum("spend"), i=Sum("impressions"), k=Sum("clicks"))
            .order_by()
        ):
            found[row["campaign_id"]][row["line_item_id"]] = (
                to_nanos(row["s"]), row["i"] or 0, row["k"] or 0,
            )  # fmt: skip
        pipe = client.pipeline(transaction=False)
        for campaign_id, base in found.items():
            pipe.set(names[campaign_id], json.dumps(base), ex=2 * 86400)
        pipe.execute()
        out.update(found)
    return out


def reconcile_spend(
    now: datetime,
    campaigns: list[Campaign] | None = None,
    led: Ledger | None = None,
    wait: float = 0,
) -> ReconcileResult:
    """Bring the Redis counters up to the rollups (the truth) and release wins that were
    never rendered; safe to run at any time, from any worker: one at a time under a lease
    (waiting up to `wait` seconds for it), since two would raise a counter by the same
    shortfall twice."""
    led = led or ledger()
    lease = Lease(led.client, led.keys.reconcile_lock, settings.PACING_LOCK_SECONDS)
    if not lease.acquire(wait):
        return ReconcileResult(skipped=True)
    try:
        return _reconcile(now, campaigns, led, lease)
    except LeaseLost:
        log.warning("reconciliation stopped: its lease expired; the next run carries on")
        return ReconcileResult(skipped=True)
    finally:
        lease.release()


def _reconcile(
    now: datetime, campaigns: list[Campaign] | None, led: Ledger, lease: Lease
) -> ReconcileResult:
    campaigns = live_campaigns(now) if campaigns is None else campaigns
    result = ReconcileResult(campaigns=len(campaigns))
    if not campaigns:
        return result
    # The truth first, then Redis: whatever the rollups hold was in Redis before this read,
    # so a repair never counts an impression twice.
    truth_today, truth_life = _truth(campaigns, now)
    days = {}
    for c in campaigns:
        zone = c.advertiser.time_zone
        start, _ = day_bounds(now, zone)
        days[c.pk] = (start.strftime("%Y%m%d"), local_day(start.timestamp() - 1, zone))
    counters = led.read(
        [(c.pk, d) for c in campaigns for d in days[c.pk]] + [(c.pk, "life") for c in campaigns]
    )
    # A win's token is not billable past its lifetime: its pending charge is released then.
    stale_minute = int((time.time() - settings.SERVING_TOKEN_TTL_SECONDS - 60) // 60)
    drift: dict[int, int] = {}
    repaired: dict[str, int] = defaultdict(int)
    for c in campaigns:
        lease.check()  # a holder stalled past its lease must not repair what another did
        today_day, yesterday_day = days[c.pk]
        today, yesterday = counters[(c.pk, today_day)], counters[(c.pk, yesterday_day)]
        life = counters[(c.pk, "life")]
        for day, hashed in ((today_day, today), (yesterday_day, yesterday)):
            for li, minute in list(hashed.pending):
                if minute < stale_minute:
                    released = led.release(c.pk, day, li, minute)
                    del hashed.pending[(li, minute)]
                    hashed.spend -= released
                    hashed.line_spend[li] = hashed.line_spend.get(li, 0) - released
                    life.spend -= released
                    life.line_spend[li] = life.line_spend.get(li, 0) - released
                    result.released += released
        # Rendered spend in Redis less the rollups': above 0, impressions not rolled up yet;
        # below, counts Redis lost (repaired now).
        truth = truth_today.get(c.pk, {})
        drift[c.pk] = today.spend - today.pending_total - sum(t.spend for t in truth.values())
        fixed = _repair(led, c.pk, today_day, today, truth, 0)
        repaired[c.currency] += fixed
        result.repaired += fixed
        pending = today.pending_total + yesterday.pending_total
        result.repaired += _repair(led, c.pk, "life", life, truth_life.get(c.pk, {}), pending)
        led.mark_reconciled(c.pk, today_day, now.timestamp())
        led.settle(
            c.pk,
            today_day,
            budgets=(to_nanos(c.daily_budget), to_nanos(c.lifetime_budget)),
            line_items=[
                (li.pk, to_nanos(li.daily_budget), to_nanos(li.lifetime_budget))
                for li in c.line_items.all()
            ],
        )
    led.record_reconciliation(drift, repaired, now.timestamp())
    return result


def _repair(
    led: Ledger,
    campaign_id: int,
    day: str,
    have: Counters,
    truth: dict[int, _Truth],
    pending: int,
) -> int:
    """Raise counters below the truth. Counters above it are wins not yet rendered or
    impressions not yet rolled up: left alone."""
    repaired = 0
    total = _Truth(
        spend=sum(t.spend for t in truth.values()),
        impressions=sum(t.impressions for t in truth.values()),
        clicks=sum(t.clicks for t in truth.values()),
    )
    checks = [
        ("s", have.spend - (have.pending_total if day != "life" else pending), total.spend),
        ("i", have.impressions, total.impressions),
        ("k", have.clicks, total.clicks),
    ]
    for li, t in truth.items():
        li_pending = have.line_pending(li) if day != "life" else 0
        checks += [
            (f"s:{li}", have.line_spend.get(li, 0) - li_pending, t.spend),
            (f"i:{li}", have.line_impressions.get(li, 0), t.impressions),
            (f"k:{li}", have.line_clicks.get(li, 0), t.clicks),
        ]
    for name, counted, true in checks:
        if counted < true:
            led.add(campaign_id, day, name, true - counted)
            if name == "s":
                repaired += true - counted
    return repaired
