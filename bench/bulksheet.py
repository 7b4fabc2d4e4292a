"""Bulksheet benchmark: the dry run and the apply of a 10,000-row file, in time and memory.

Run: .venv/bin/python bench/bulksheet.py [--campaigns 500]

It builds its own data in a temporary SQLite file and uses Redis db 11 on 127.0.0.1:6379
(`REDIS_URL` overrides it) under a random key prefix, deleted at the end. The file creates
N campaigns, each with 10 line items (with targeting, caps and dayparts) and 9 creative
assignments: 20 rows per campaign, 10,000 rows for 500. Phases:

1. dry run (create): read, plan and record the upload (`validate_upload`);
2. apply (create): `apply_upload`, what the Celery task runs, every row through the services;
3. export of the organisation (10,000 rows again: campaigns, line items, assignments);
4. dry run and apply (update) of that export with every line item's bid changed.

Two organisations get the same data: every phase runs once for the first, timed, and once
for the second under tracemalloc (which slows Python down), for its peak of traced memory.
"max RSS" is the process's peak resident size after the timed run (ru_maxrss; it only grows).
"""

import argparse
import csv
import io
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

from bench.common import (  # noqa: E402
    configure,
    delete_keys,
    timed_and_traced,
)

LINE_ITEMS, ASSIGNMENTS = 10, 9  # per campaign
Phase = Callable[[], tuple[Any, int]]  # runs a phase; returns its value and its rows
Row = tuple[str, int, float, float, float]  # phase, rows, seconds, traced peak, max RSS


def build_file(campaigns: int, creative_ids: list[int]) -> bytes:
    from campaigns.bulk.columns import HEADERS

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=HEADERS, lineterminator="\r\n")
    writer.writeheader()
    for c in range(campaigns):
        campaign = f"tmp:c{c}"
        writer.writerow(
            {
                "Entity": "Campaign",
                "Operation": "create",
                "Campaign Id": campaign,
                "Name": f"Campaign {c}",
                "Status": "active",
                "Start": "2027-03-01T00:00",
                "End": "2027-06-30T23:59",
                "Daily Budget": "500.00",
                "Lifetime Budget": "40000.00",
                "Pacing Mode": "even",
                "Priority Tier": "price",
            }
        )
        for n in range(LINE_ITEMS):
            line_item = f"tmp:c{c}-l{n}"
            writer.writerow(
                {
                    "Entity": "Line Item",
                    "Operation": "create",
                    "Campaign Id": campaign,
                    "Line Item Id": line_item,
                    "Name": f"Campaign {c} line {n}",
                    "Bid": f"{1 + n * 0.25:.2f}",
                    "Sizes": "300x250;728x90",
                    "Countries": "US;CA;GB",
                    "Device Types": "2;4",
                    "Channels": "web;app",
                    "Keywords": "boots;hiking",
                    "Categories": "IAB17",
                    "Frequency Caps": "3/day;10/lifetime",
                    "Dayparts": "0-4 07:00-10:00;5,6 10:00-22:00",
                }
            )
            if n < ASSIGNMENTS:
                writer.writerow(
                    {
                        "Entity": "Creative Assignment",
                        "Operation": "create",
                        "Campaign Id": campaign,
                        "Line Item Id": line_item,
                        "Creative Id": str(creative_ids[(c + n) % len(creative_ids)]),
                        "Weight": "1",
                    }
                )
    return out.getvalue().encode()


def raise_bids(export: str) -> bytes:
    rows = list(csv.DictReader(io.StringIO(export)))
    for row in rows:
        if row["Entity"] == "Line Item":
            row["Bid"] = f"{float(row['Bid']) + 0.1:.2f}"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def measure(label: str, timed: Phase, traced: Phase) -> tuple[Any, Row]:
    """Time one run of a phase, and take the traced peak of another (on the other data)."""
    (value, rows), seconds, rss, peak = timed_and_traced(timed, traced)
    print(
        f"  {label:<18} {rows:>7,} rows {seconds:7.2f} s  traced peak {peak:6.1f} MiB  "
        f"max RSS {rss:6.1f} MiB",
        flush=True,
    )
    return value, (label, rows, seconds, peak, rss)


def run(campaigns: int) -> list[Row]:
    import django

    django.setup()
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from django.core.management import call_command
    from PIL import Image

    from campaigns.bulk.apply import apply_upload
    from campaigns.bulk.export import export_csv
    from campaigns.bulk.services import queue_upload, validate_upload
    from campaigns.models import Advertiser, BulkUpload, LineItem
    from creatives.models import Creative

    call_command("migrate", verbosity=0)
    buf = io.BytesIO()
    Image.new("RGB", (300, 250), "#1565c0").save(buf, format="PNG")
    image = default_storage.save("creatives/bench.png", ContentFile(buf.getvalue()))

    def organisation(name: str) -> tuple[Advertiser, bytes]:
        org = Advertiser.objects.create(name=name)
        creatives = Creative.objects.bulk_create(
            Creative(
                advertiser=org,
                name=f"Creative {n}",
                image=image,
                width=300,
                height=250,
                click_url="https://example.com/",
            )
            for n in range(50)
        )
        return org, build_file(campaigns, [c.pk for c in creatives])

    def dry_run(org: Advertiser, data: bytes, uploads: list[BulkUpload]) -> Phase:
        def phase() -> tuple[None, int]:
            upload, _ = validate_upload(advertiser=org, file=ContentFile(data, "b.csv"), by=None)
            assert upload.status == "validated", upload.errors[:5]
            uploads.append(upload)
            return None, upload.rows_total

        return phase

    def apply(uploads: list[BulkUpload]) -> Phase:
        def phase() -> tuple[None, int]:
            upload = uploads[-1]
            assert queue_upload(upload, by=None)
            status = apply_upload(upload)
            assert status == "done", BulkUpload.objects.get(pk=upload.pk).errors[:5]
            return None, upload.rows_total

        return phase

    def export(org: Advertiser, texts: list[str]) -> Phase:
        def phase() -> tuple[None, int]:
            texts.append(export_csv(org))
            return None, texts[-1].count("\n") - 1

        return phase

    print(f"bulksheet benchmark: {campaigns} campaigns x {1 + LINE_ITEMS + ASSIGNMENTS} rows")
    (a, file_a), (b, file_b) = organisation("Timed"), organisation("Traced")
    uploads_a: list[BulkUpload] = []
    uploads_b: list[BulkUpload] = []
    texts_a: list[str] = []
    texts_b: list[str] = []
    phases = [
        ("dry run (create)", dry_run(a, file_a, uploads_a), dry_run(b, file_b, uploads_b)),
        ("apply (create)", apply(uploads_a), apply(uploads_b)),
        ("export", export(a, texts_a), export(b, texts_b)),
    ]
    results = [measure(label, timed, traced)[1] for label, timed, traced in phases]
    update_a, update_b = raise_bids(texts_a[-1]), raise_bids(texts_b[-1])
    phases = [
        ("dry run (update)", dry_run(a, update_a, uploads_a), dry_run(b, update_b, uploads_b)),
        ("apply (update)", apply(uploads_a), apply(uploads_b)),
    ]
    results += [measure(label, timed, traced)[1] for label, timed, traced in phases]
    print(f"  line items: {LineItem.objects.count():,} (both organisations)")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-bulk-") as tmp:
        prefix = configure(Path(tmp))
        try:
            results = run(args.campaigns)
        finally:
            from django_redis import get_redis_connection

            delete_keys(get_redis_connection("default"), prefix)
    print(f"\n{'phase':<18} {'rows':>7} {'seconds':>8} {'traced peak MiB':>16} {'max RSS MiB':>12}")
    for label, rows, seconds, peak, rss in results:
        print(f"{label:<18} {rows:>7,} {seconds:>8.2f} {peak:>16.1f} {rss:>12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
