"""What the live pages show, computed from what serving and the pacing controller keep in
Redis: requests per second and fill by door (the serving processes' published counters),
spend today against budget and the pacing rate of each watched campaign."""

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from redis import Redis

from campaigns.console.delivery import CampaignState
from campaigns.models import Campaign
from reporting.metrics.collect import PACING_TASK, Figures

# The doors shown on the ops page, in this order. Fill is the share of ad requests answered
# with an ad: only where "no ad" has its own status (204); a VAST player gets an empty VAST
# document with a 200, which the counters cannot tell from a filled one.
DOORS = ("v1", "openrtb", "vast", "impression", "click", "event", "error", "sync")
FILL_DOORS = ("v1", "openrtb")
DASH = "\u2013"  # an en dash: no figure


def _door_counts(serving: Mapping[str, Any]) -> dict[str, list[int]]:
    """door -> [requests, filled (200), unfilled (204), server errors (5xx)] so far."""
    counts: dict[str, list[int]] = {}
    for door, status, n in serving.get("requests", []):
        row = counts.setdefault(door, [0, 0, 0, 0])
        row[0] += n
        if status == 200:
            row[1] += n
        elif status == 204:
            row[2] += n
        elif status >= 500:
            row[3] += n
    return counts


def advance_samples(
    previous: Mapping[str, Any], serving: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """Each live process's last two distinct samples of its counters: a process publishes
    every few seconds, so a rate is the difference between its last two publications (a
    process gone from Redis is dropped; a restarted worker is a new process)."""
    out: dict[str, Any] = {}
    for process, figures in serving.items():
        sample = {"at": figures.get("published_at", 0.0), "c": _door_counts(figures)}
        held = previous.get(process) or {}
        current = held.get("cur")
        if current is None or sample["at"] < current["at"]:
            out[process] = {"cur": sample}
        elif sample["at"] > current["at"]:
            out[process] = {"prev": current, "cur": sample}
        else:
            out[process] = held
    return out


def door_rates(samples: Mapping[str, Any]) -> dict[str, list[float]]:
    """door -> [requests/s, filled/s, unfilled/s, 5xx/s] over the fleet (summed over the
    processes, each over its own last interval)."""
    rates: dict[str, list[float]] = {}
    for held in samples.values():
        prev, cur = held.get("prev"), held["cur"]
        if prev is None or cur["at"] <= prev["at"]:
            continue
        seconds = cur["at"] - prev["at"]
        for door, now in cur["c"].items():
            before = prev["c"].get(door, [0, 0, 0, 0])
            row = rates.setdefault(door, [0.0, 0.0, 0.0, 0.0])
            for i in range(4):
                row[i] += max(0, now[i] - before[i]) / seconds
    return rates


def _rate(value: float) -> str:
    return f"{value:,.1f}"


def ops_fields(figures: Figures, samples: Mapping[str, Any]) -> dict[str, str]:
    """The ops page's numbers, formatted, by the name of the element that shows each."""
    rates = door_rates(samples)
    fields: dict[str, str] = {}
    for door in DOORS:
        total, filled, unfilled, errors = rates.get(door, [0.0, 0.0, 0.0, 0.0])
        fields[f"{door}.rps"] = _rate(total)
        fields[f"{door}.errors"] = _rate(errors)
        answered = filled + unfilled
        fields[f"{door}.fill"] = (
            f"{filled / answered:.1%}" if door in FILL_DOORS and answered else DASH
        )
    fields["all.rps"] = _rate(sum(row[0] for row in rates.values()))
    fields["processes"] = str(len(figures.serving))
    ages = [
        g["snapshot_age_seconds"]
        for f in figures.serving.values()
        if (g := f.get("gauges", {})).get("snapshot_age_seconds", -1) >= 0
    ]
    fields["snapshot.version"] = str(figures.snapshot_version or DASH)
    fields["snapshot.age"] = f"{max(ages):.0f} s" if ages else DASH
    outage = any(f.get("gauges", {}).get("redis_outage") for f in figures.serving.values())
    fields["redis"] = "outage" if outage else "ok"
    lag = figures.backlog.get("lag", -1.0)  # not measured yet: -1, or no gauge at all
    fields["ingest.lag"] = f"{int(lag):,}" if lag >= 0 else DASH
    pacing = figures.tasks.get(PACING_TASK)
    fields["pacing.age"] = (
        f"{figures.now - pacing.last_end:.0f} s" if pacing and pacing.last_end else DASH
    )
    fields["updated"] = datetime.fromtimestamp(figures.now, ZoneInfo("UTC")).strftime(
        "%H:%M:%S UTC"
    )
    return fields


def _money(amount: Any) -> str:
    return DASH if amount is None else f"{amount:,.2f}"


def campaign_fields(campaign: Campaign, state: CampaignState, now: datetime) -> dict[str, str]:
    """A campaign page's numbers, formatted, in its organisation's time zone."""
    budget = campaign.daily_budget if campaign.daily_budget is not None else state.budget_today
    share = float(state.spend_today / budget) if budget else 0.0
    return {
        "delivery": state.delivery,
        "spend_today": _money(state.spend_today),
        "budget": _money(budget),
        "spend_share": f"{share:.1%}" if budget else DASH,
        "spend_ratio": f"{min(share, 1.0):.4f}",
        "spend_lifetime": _money(state.spend_lifetime),
        "wins_today": f"{state.wins_today:,}",
        "clicks_today": f"{state.clicks_today:,}",
        "pacing_rate": f"{state.pass_through:.0%}",
        "pace": state.pace or DASH,
        "updated": now.astimezone(ZoneInfo(campaign.advertiser.time_zone)).strftime("%H:%M:%S %Z"),
    }


def read_json_hash(client: Redis, key: str) -> dict[str, Any]:
    raw: Any = client.hgetall(key)
    return {(k.decode() if isinstance(k, bytes) else k): json.loads(v) for k, v in raw.items()}
