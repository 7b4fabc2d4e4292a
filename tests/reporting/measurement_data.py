"""Events whose measurement totals are known, shared by the measurement tests.

Yesterday 10:00-11:00 UTC, in three organisations and two doors:
- v1 door, placement P1 (publisher X): 10 slots asked; 6 won by Acme's USD line item, 2 by
  buyer 7, 2 unfilled; buyer 7 bid 4 times and buyer 8 once. Acme: 5 impressions at a 20.00
  CPM (0.10 USD), 1 click, 1 creative error, 4 measurable of which 3 viewable, 2 video
  starts, 2 first quartiles, 1 midpoint, 1 third quartile, 1 complete. Buyer 7: 2
  impressions at 15.00 (0.03 USD).
- openrtb door, placement P2 (publisher Y): 4 slots; 2 won by Beta's EUR line item, 2
  unfilled; 2 impressions at 500.00 EUR (1.00 EUR = 1.10 USD at the day's reference rate).
- v1 door, P2: Gamma's CHF line item, 1 slot won, 1 impression at 100.00 CHF (0.10 CHF):
  CHF has no rate, so it is shown apart and never added.
- Today: 1 more Acme impression at 20.00 (0.02 USD) for the budget table.
- Buyer response times that hour: buyer 7, 97 answers at 20 ms and 3 timeouts; buyer 8,
  10 answers at 100 ms.
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from redis import Redis

from campaigns.models import Advertiser, Campaign, FxRateSet, LineItem, Membership, Placement, Role
from reporting.ingest import GROUP
from reporting.tasks import ingest_events_task
from serving.events import Event, encode_events
from serving.keys import RedisKeys
from serving.latency import TIMEOUT, bucket_of
from serving.models import Buyer
from tests.conftest import wait_for
from tests.factories import make_campaign, make_line_item, make_placement


@dataclass
class World:
    day: date
    acme: Advertiser
    beta: Advertiser
    gamma: Advertiser
    acme_li: LineItem
    beta_li: LineItem
    gamma_li: LineItem
    p1: Placement
    p2: Placement
    buyer7: Buyer
    buyer8: Buyer


def make_world() -> World:
    day = (datetime.now(UTC) - timedelta(days=1)).date()
    acme = Advertiser.objects.create(name="Acme", currency="USD")
    beta = Advertiser.objects.create(name="Beta", currency="EUR")
    gamma = Advertiser.objects.create(name="Gamma", currency="CHF")
    lis = []
    for org in (acme, beta, gamma):
        campaign = make_campaign(org, daily_budget=Decimal("1.00"))
        Campaign.objects.filter(pk=campaign.pk).update(lifetime_budget=Decimal("10.00"))
        lis.append(make_line_item(campaign, "1.00"))
    p1, p2 = make_placement(), make_placement()
    buyer7 = Buyer.objects.create(name="seven", endpoint="http://127.0.0.1:9/7")
    buyer8 = Buyer.objects.create(name="eight", endpoint="http://127.0.0.1:9/8")
    FxRateSet.objects.create(
        rates_date=day, rates={"USD": "1", "EUR": "1.10", "GBP": "1.25"}, source="test"
    )
    acme_li, beta_li, gamma_li = lis
    return World(day, acme, beta, gamma, acme_li, beta_li, gamma_li, p1, p2, buyer7, buyer8)


def known_events(w: World) -> list[list[Event]]:
    """The stream entries (one list of events each) of the module docstring."""
    at = int(datetime.combine(w.day, time(10, 5), tzinfo=UTC).timestamp() * 1000)
    now = int(datetime.now(UTC).timestamp() * 1000)

    def own(li: LineItem, t: str, pl: Placement, door: str, cpm: int = 0, r: str = "",
            ts: int = at) -> Event:  # fmt: skip
        return Event(
            t=t, ts=ts, pl=pl.pk, li=li.pk, cp=li.campaign_id, adv=li.campaign.advertiser_id,
            cr=li.creatives.get().pk, cpm=cpm, r=r, dr=door, d=uuid.uuid4().hex,
        )  # fmt: skip

    def ext(t: str, b: Buyer, cpm: int = 0) -> Event:
        return Event(t=t, ts=at, pl=w.p1.pk, b=b.pk, cpm=cpm, dr="v1", d=uuid.uuid4().hex)

    def unfilled(pl: Placement, door: str) -> Event:
        return Event(t="req", ts=at, pl=pl.pk, dr=door, d=uuid.uuid4().hex)

    a, b, g = w.acme_li, w.beta_li, w.gamma_li
    entries: list[list[Event]] = []
    # v1 at P1
    entries.append([own(a, "req", w.p1, "v1") for _ in range(6)])
    entries.append([ext("req", w.buyer7), ext("req", w.buyer7), unfilled(w.p1, "v1")])
    entries.append([unfilled(w.p1, "v1")] + [ext("bid", w.buyer7) for _ in range(4)])
    entries.append([ext("bid", w.buyer8)])
    entries += [[own(a, "imp", w.p1, "v1", 20_000_000)] for _ in range(5)]
    entries.append([own(a, "clk", w.p1, "v1"), own(a, "err", w.p1, "v1", r="405")])
    for name, n in (("measurable", 4), ("viewable", 3), ("start", 2), ("firstQuartile", 2),
                    ("midpoint", 1), ("thirdQuartile", 1), ("complete", 1)):  # fmt: skip
        entries += [[own(a, "evt", w.p1, "v1", r=name)] for _ in range(n)]
    entries += [[ext("imp", w.buyer7, 15_000_000)] for _ in range(2)]
    # openrtb at P2: Beta, EUR
    entries.append([own(b, "req", w.p2, "openrtb"), own(b, "req", w.p2, "openrtb")])
    entries.append([unfilled(w.p2, "openrtb"), unfilled(w.p2, "openrtb")])
    entries += [[own(b, "imp", w.p2, "openrtb", 500_000_000)] for _ in range(2)]
    # v1 at P2: Gamma, CHF (no rate)
    entries.append([own(g, "req", w.p2, "v1")])
    entries.append([own(g, "imp", w.p2, "v1", 100_000_000)])
    # today: one more Acme impression
    entries.append([own(a, "imp", w.p1, "v1", 20_000_000, ts=now)])
    # buyer response times
    entries.append(
        [
            Event(t="lat", ts=at, pl=0, b=w.buyer7.pk, r=str(bucket_of(20.0)), n=97),
            Event(t="lat", ts=at, pl=0, b=w.buyer7.pk, r=str(TIMEOUT), n=3),
            Event(t="lat", ts=at, pl=0, b=w.buyer8.pk, r=str(bucket_of(100.0)), n=10),
        ]
    )
    return entries


def push(client: Redis, entries: list[list[Event]]) -> bytes:
    """Append the entries to the event stream; the last entry's id."""
    stream = RedisKeys(settings.REDIS_KEY_PREFIX).events
    last = b""
    for events in entries:
        last = client.xadd(stream, {"v": encode_events(events)})  # type: ignore[assignment]
    return last


def ingest(client: Redis, entries: list[list[Event]]) -> None:
    """Push the entries and wait until the real worker's ingest task has rolled them all up."""
    ingest_up_to(client, push(client, entries))


def ingest_up_to(client: Redis, last: bytes | str) -> None:
    """Run the ingest task on the real worker and wait until it has rolled up the event
    stream up to the entry `last`."""
    stream = RedisKeys(settings.REDIS_KEY_PREFIX).events
    ingest_events_task.delay()

    def rolled_up() -> bool:
        # Acknowledged up to the last entry: the worker's transaction has committed (polling
        # the table instead would read it mid-write, which SQLite refuses).
        groups = {g["name"]: g for g in client.xinfo_groups(stream)}
        group = groups.get(GROUP.encode())
        return bool(group and group["last-delivered-id"] == last and group["pending"] == 0)

    wait_for(rolled_up)


def login(name: str, org: Advertiser | None = None, staff: bool = False) -> Client:
    user = get_user_model().objects.create_user(name, password="pw-12345-long", is_staff=staff)
    if org is not None:
        Membership.objects.create(user=user, advertiser=org, role=Role.ANALYST)
    client = Client()
    client.force_login(user)
    return client


def yesterday(w: World) -> str:
    return f"range=custom&from={w.day}&to={w.day}"
