"""Console benchmark: server time of the list pages with 500 campaigns and 5,000 line items.

Run: .venv/bin/python bench/console.py [--campaigns 500] [--runs 20]

It builds its own data in a temporary SQLite file and an embedded Redis (or `REDIS_URL`)
under a random key prefix, all removed at the end: one organisation with N campaigns of 10
line items each (sizes, countries, dayparts), 50 creatives, 3 assignments per line item, two
placements, and pacing counters in Redis for every campaign. Each page is requested through
Django's whole stack (middleware, session, templates) in this process, `--runs` times after
one warm-up; it prints the median and the slowest wall-clock time in milliseconds, the
median CPU time of this process (what a busy machine does not inflate; the database is
in-process SQLite, so it includes the queries), the page's queries and its size. The aim is
under 200 ms for each.
"""

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

from bench.common import django_bench  # noqa: E402

LINE_ITEMS, CREATIVES, ASSIGNMENTS = 10, 50, 3


def build(campaigns: int) -> tuple[Any, list[int]]:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from campaigns.models import (
        Advertiser,
        Campaign,
        LineItem,
        LineItemCreative,
        Membership,
        Placement,
        Publisher,
    )  # fmt: skip
    from campaigns.pacing.schedule import day_schedule
    from campaigns.snapshot import redis_client, redis_keys
    from creatives.models import Creative

    org = Advertiser.objects.create(name="Bench Outdoor", time_zone="Europe/Paris")
    user = get_user_model().objects.create_user("bench")
    Membership.objects.create(user=user, advertiser=org, role="manager")
    publisher = Publisher.objects.create(name="Bench News")
    Placement.objects.create(publisher=publisher, name="Top", sizes=["300x250", "728x90"])
    Placement.objects.create(publisher=publisher, name="Side", sizes=["300x250"])
    now = timezone.now()
    Campaign.objects.bulk_create(
        Campaign(
            advertiser=org, name=f"Campaign {n:04d}", status="active",
            start_at=now - timedelta(days=1), daily_budget=Decimal("100"),
            lifetime_budget=Decimal("5000"),
        )
        for n in range(campaigns)
    )  # fmt: skip
    ids = list(Campaign.objects.filter(advertiser=org).values_list("id", flat=True))
    LineItem.objects.bulk_create(
        LineItem(
            campaign_id=c, name=f"Line item {c}-{m}", bid=Decimal("2.50"),
            sizes=["300x250"], countries=["US", "CA"], device_types=[2, 4],
            dayparts=[{"days": [0, 1, 2, 3, 4], "start": "07:00", "end": "20:00"}],
        )
        for c in ids
        for m in range(LINE_ITEMS)
    )  # fmt: skip
    Creative.objects.bulk_create(
        Creative(
            advertiser=org, name=f"Creative {n}", kind="image", width=300, height=250,
            click_url="https://bench.example/", status="approved" if n % 5 else "pending",
        )
        for n in range(CREATIVES)
    )  # fmt: skip
    creative_ids = list(Creative.objects.filter(advertiser=org).values_list("id", flat=True))
    line_items = list(
        LineItem.objects.filter(campaign__advertiser=org).values_list("id", flat=True)
    )
    LineItemCreative.objects.bulk_create(
        LineItemCreative(line_item_id=li, creative_id=creative_ids[(li + k) % CREATIVES])
        for li in line_items
        for k in range(ASSIGNMENTS)
    )
    client, keys = redis_client(), redis_keys()
    day = day_schedule(now, org.time_zone, "even").day
    pipe = client.pipeline(transaction=False)
    for c in ids:
        pipe.hset(keys.spend(day, c), mapping={"s": 1_250_000_000, "i": 400})
        pipe.hset(keys.lifetime_spend(c), mapping={"s": 9_000_000_000})
    pipe.execute()
    return user, ids


def measure(client: Any, url: str, runs: int) -> tuple[float, float, float, int, int]:
    from django.db import connection

    client.get(url)  # warm-up: templates compiled, caches filled
    times, cpu = [], []
    queries = 0

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        nonlocal queries
        queries += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    return (
        statistics.median(times),
        max(times),
        statistics.median(cpu),
        queries,
        len(response.content),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--campaigns", type=int, default=500)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--profile", action="store_true", help="profile the list page once")
    args = parser.parse_args()
    with django_bench("console"):
        from django.conf import settings
        from django.test import Client, override_settings

        # No collectstatic here: static URLs unhashed, as in the tests.
        unhashed = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
        override_settings(STORAGES={**settings.STORAGES, "staticfiles": unhashed}).enable()

        started = time.perf_counter()
        user, ids = build(args.campaigns)
        print(
            f"built {args.campaigns} campaigns, {args.campaigns * LINE_ITEMS} line items, "
            f"{args.campaigns * LINE_ITEMS * ASSIGNMENTS} assignments in "
            f"{time.perf_counter() - started:.1f} s"
        )
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(user)
        pages = {
            "campaign list, page 1": "/",
            "campaign list, sorted by name, page 10": "/?sort=name&page=10",
            "campaign list, search": "/?q=Campaign 04",
            "campaign page (10 line items)": f"/campaigns/{ids[0]}/",
            "creative library": "/creatives/",
        }
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(
            f"{'page':40} {'median ms':>10} {'max ms':>8} {'CPU ms':>7} {'queries':>8} {'KiB':>5}"
        )
        if args.profile:
            import cProfile
            import pstats

            client.get("/")
            profiler = cProfile.Profile()
            profiler.enable()
            client.get("/")
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
            return
        for name, url in pages.items():
            median, slowest, cpu, queries, size = measure(client, url, args.runs)
            print(
                f"{name:40} {median:10.1f} {slowest:8.1f} {cpu:7.1f} {queries:8d} "
                f"{size / 1024:5.0f}"
            )


if __name__ == "__main__":
    main()
