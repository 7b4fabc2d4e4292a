"""A simulated world with a planted CTR, sent as events through the real telemetry writer.

Two line items (10: CPC at 0.50 a click; 20: CPM at 2.00) with two creatives each, drawn
uniformly (propensity 0.5) by the logged policy. The true click probability is
`sigmoid(BASE + GOOD·[creative is the first of its line item] + MOBILE·[device 1]
+ GERMANY·[country DE])`, so a model that learns it picks the first creatives. A click
converts (post-click, ten minutes later) with probability `sigmoid(CVR_BASE + CVR_GOOD·
[creative is the second of its line item] + CVR_MOBILE·[device 1])`: the creative clicked
less converts more, and the line item tells nothing.
"""

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import msgspec
from django.conf import settings
from redis import Redis

from reporting.conversions.models import Attribution, Conversion, Source
from reporting.telemetry.conversions import write_conversions
from reporting.telemetry.writer import write_telemetry
from serving.events import Event, encode_events
from serving.keys import RedisKeys

BASE, GOOD, MOBILE, GERMANY = -3.0, 1.2, 0.8, -0.6
CVR_BASE, CVR_GOOD, CVR_MOBILE = -1.5, 1.6, -1.2
CREATIVES = {10: (101, 102), 20: (201, 202)}
CPC_PRICE_NANOS = 500_000_000  # 0.50 a click, in billionths
CPM_MICROS = 2_000_000  # 2.00 CPM: an impression's price in billionths
DEVICES = (1, 2)
COUNTRIES = ("US", "DE")


def true_ctr(creative: int, device: int, country: str, good: float = GOOD) -> float:
    first = creative in (101, 201)
    z = BASE + good * first + MOBILE * (device == 1) + GERMANY * (country == "DE")
    return 1 / (1 + math.exp(-z))


def best_policy_ctr() -> float:
    """The expected CTR of always showing the better creative (contexts are uniform)."""
    return sum(true_ctr(101, d, c) for d in DEVICES for c in COUNTRIES) / 4


@dataclass
class Slot:
    decision: str
    ts_ms: int
    line_item: int
    creative: int
    device: int
    country: str
    clicked: bool


def _features(slot: Slot) -> str:
    li = slot.line_item
    bid = 0.5 if li == 10 else 2.0
    how = datetime.fromtimestamp(slot.ts_ms / 1000, UTC).weekday() * 24
    return msgspec.json.encode(
        [
            "v1",
            "banner",
            "300x250",
            slot.country,
            "",
            slot.device,
            "iOS",
            "WEB",
            ["IAB1"],
            [12345],
            0.5,
            1.01,
            how,
            [[li, slot.creative, 2, bid, bid, 0.002]],
        ]
    ).decode()


def simulate(
    start: datetime, hours: int, per_hour: int, *, seed: int, good: float = GOOD
) -> list[Slot]:
    """Slots decided over `hours` from `start`, clicks drawn from the true CTR (`good` sets
    the first creatives' advantage; negative: they are the worse ones)."""
    rng = random.Random(seed)
    slots = []
    base_ms = int(start.timestamp() * 1000)
    for h in range(hours):
        for i in range(per_hour):
            li = rng.choice((10, 20))
            creative = rng.choice(CREATIVES[li])
            device, country = rng.choice(DEVICES), rng.choice(COUNTRIES)
            p = true_ctr(creative, device, country, good)
            ts = base_ms + h * 3_600_000 + i * (3_600_000 // per_hour)
            slots.append(
                Slot(f"s{seed}-{h}-{i}", ts, li, creative, device, country, rng.random() < p)
            )
    return slots


def events(slot: Slot) -> list[Event]:
    li, cr, d, ts = slot.line_item, slot.creative, slot.decision, slot.ts_ms
    common = {"pl": 7, "li": li, "cp": li // 10, "adv": 1, "cr": cr, "d": d}
    out = [
        Event(t="req", ts=ts, cs="→ contextual", x=_features(slot), **common),  # type: ignore[arg-type]
        Event(t="imp", ts=ts + 50, cpm=CPM_MICROS if li == 20 else 0, **common),  # type: ignore[arg-type]
    ]
    if slot.clicked:
        out.append(Event(t="clk", ts=ts + 5_000, cpm=CPC_PRICE_NANOS if li == 10 else 0, **common))  # type: ignore[arg-type]
    return out


def send(client: Redis, slots: list[Slot]) -> None:
    """Into the event stream (one entry per slot, as serving writes them), then the files."""
    stream = RedisKeys(settings.REDIS_KEY_PREFIX).events
    pipe = client.pipeline(transaction=False)
    for n, slot in enumerate(slots):
        pipe.xadd(stream, {"v": encode_events(events(slot))})
        if n % 2000 == 1999:
            pipe.execute()
    pipe.execute()
    while write_telemetry().read:
        pass


def day(now: datetime, days_ago: int) -> datetime:
    """Midnight-aligned hour `days_ago` whole days before `now`'s hour."""
    return now.replace(minute=0, second=0, microsecond=0) - timedelta(days=days_ago)


def true_cvr(creative: int, device: int) -> float:
    z = CVR_BASE + CVR_GOOD * (creative in (102, 202)) + CVR_MOBILE * (device == 1)
    return 1 / (1 + math.exp(-z))


def conversions(slots: list[Slot], *, seed: int) -> list[Conversion]:
    """A post-click conversion ten minutes after each click the true CVR converts."""
    rng = random.Random(seed)
    out = []
    for n, slot in enumerate(s for s in slots if s.clicked):
        if rng.random() >= true_cvr(slot.creative, slot.device):
            continue
        at = datetime.fromtimestamp((slot.ts_ms + 600_000) / 1000, UTC)
        out.append(
            Conversion(
                advertiser_id=1, event="purchase", converted_at=at, source=Source.PIXEL,
                attribution=Attribution.CLICK, decision_id=slot.decision,
                campaign_id=slot.line_item // 10, line_item_id=slot.line_item,
                creative_id=slot.creative, placement_id=7, stream_id=f"{slot.ts_ms + 600_000}-{n}",
                touched_at=datetime.fromtimestamp((slot.ts_ms + 5_000) / 1000, UTC),
            )
        )  # fmt: skip
    return out


def send_conversions(converted: list[Conversion]) -> None:
    """Into the conversions files, as the attribution job writes them."""
    write_conversions((c, "USD") for c in converted)
