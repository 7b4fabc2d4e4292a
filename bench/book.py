"""The benchmark's book of business and its request mix (used by `bench/serving.py`).

`load_book` bulk-creates live line items with realistic targeting (sizes, countries, device
types, channels, frequency caps, a few regions and keywords, placement targeting), one
approved image creative per line item and size, and the placements. `RequestMix` makes
`POST /v1/ad` bodies and OpenRTB 2.6 BidRequests with several sizes, countries, device
types, user agents and consent signals, 30 % of them with a user id from a small pool.

Rows go in with `bulk_create` (no signals fire, so nothing enqueues a Celery publish; the
caller publishes the snapshot itself). Every random choice comes from the `random.Random`
passed in, so two runs with the same seed build the same book and the same requests.
"""

import io
import json
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

# Banner sizes with how often line items and placements use them.
SIZES = {
    "300x250": (300, 250, 30),
    "728x90": (728, 90, 20),
    "320x50": (320, 50, 18),
    "160x600": (160, 600, 10),
    "300x600": (300, 600, 12),
    "970x250": (970, 250, 10),
}
# Targeted countries (ISO alpha-2) and how often a country list picks each.
TARGET_COUNTRIES = {"US": 30, "DE": 14, "GB": 12, "FR": 10, "JP": 8, "CA": 6, "ES": 5,
                    "IT": 5, "NL": 4, "BR": 3, "AU": 3}  # fmt: skip
ALPHA3 = {"US": "USA", "DE": "DEU", "GB": "GBR", "FR": "FRA", "JP": "JPN", "CA": "CAN",
          "ES": "ESP", "IT": "ITA", "NL": "NLD", "BR": "BRA", "AU": "AUS", "IN": "IND",
          "MX": "MEX"}  # fmt: skip
EU_TRAFFIC = {"DE": 30, "GB": 25, "FR": 20, "ES": 10, "IT": 10, "NL": 5}
NON_EU_TRAFFIC = {"US": 45, "JP": 14, "CA": 10, "BR": 9, "IN": 9, "AU": 7, "MX": 6}
DEVICE_TARGETS = [[2], [4], [4, 5], [1, 4, 5], [3, 7], [5]]
CHANNEL_TARGETS = [["web"], ["app"], ["ctv"], ["web", "app"]]
REGION_TARGETS = [["US-CA"], ["US-NY", "US-NJ"], ["DE-BY"], ["GB-ENG"]]
KEYWORDS = ["sports", "news", "finance", "travel", "gaming", "recipes", "autos", "music"]
CATEGORIES = ["IAB1", "IAB2", "IAB3", "IAB8", "IAB17", "IAB19", "IAB20"]
TIERS = [("sponsorship", 3), ("guaranteed", 8), ("price", 84), ("house", 5)]
CURRENCIES = [("USD", 85), ("EUR", 10), ("GBP", 5)]

# (device type, channel, user agent): what a request says about the device.
DEVICES = [
    (2, "web", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
     "Gecko) Chrome/126.0.0.0 Safari/537.36", 24),
    (2, "web", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, "
     "like Gecko) Version/17.5 Safari/605.1.15", 8),
    (4, "web", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
     "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", 18),
    (4, "app", "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like "
     "Gecko) Chrome/126.0.6478.71 Mobile Safari/537.36", 18),
    (5, "app", "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
     "like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", 8),
    (3, "ctv", "Mozilla/5.0 (Linux; Android 9; AFTKA Build/PS7633.3445N; wv) "
     "AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/124.0.6367.82 Mobile "
     "Safari/537.36", 14),
    (7, "ctv", "Roku/DVP-12.5 (12.5.0.4178-AE)", 5),
    (1, "app", "Dalvik/2.1.0 (Linux; U; Android 13; SM-A536B Build/TP1A.220624.014)", 5),
]  # fmt: skip
N_USERS = 100  # the pool of user ids that 30 % of requests carry
CAP = {"count": 3, "period": "day"}
PNG_COLOURS = ["#1565c0", "#2e7d32", "#c62828", "#6a1b9a", "#ef6c00"]


def _weighted(rng: random.Random, table: dict[str, int] | list[tuple[Any, int]]) -> Any:
    items = list(table.items()) if isinstance(table, dict) else table
    return rng.choices([k for k, _ in items], [w for _, w in items])[0]


def _distinct(rng: random.Random, table: dict[str, int], k: int) -> list[str]:
    chosen: list[str] = []
    while len(chosen) < k:
        pick = _weighted(rng, table)
        if pick not in chosen:
            chosen.append(pick)
    return chosen


@dataclass
class Book:
    """What the request mix needs to know of the loaded book."""

    placements: list[tuple[str, list[str]]] = field(default_factory=list)  # (key, sizes)
    line_items: int = 0
    campaigns: int = 0
    creatives: int = 0
    shares: dict[str, float] = field(default_factory=dict)  # targeting shares, for the log
    seconds: float = 0.0


def _images() -> dict[str, str]:
    """One stored PNG per size (names are content hashes: stored once)."""
    from PIL import Image

    from creatives.files import PREFIX, store_once

    names = {}
    for n, (size, (w, h, _)) in enumerate(SIZES.items()):
        buf = io.BytesIO()
        Image.new("RGB", (w, h), PNG_COLOURS[n % len(PNG_COLOURS)]).save(buf, format="PNG")
        names[size] = store_once(f"{PREFIX}/bench-{size}.png", buf.getvalue())
    return names


class FastInsert:
    """Plain `executemany` INSERTs for many rows of one model, with explicit primary keys.

    `bulk_create` spends about 1 ms of Python per line item here (25 s for 10,000 with their
    creatives), too slow for a 100,000-item book. This builds one template row from a model
    instance with every default (so columns added to the model later still get their
    default), prepares only the fields a row overrides, and numbers rows from the table's
    current maximum id (the benchmark's own SQLite file: nobody else writes to it).
    """

    def __init__(self, model: Any) -> None:
        from django.db import connection

        self.model, self.connection = model, connection
        self.fields = list(model._meta.concrete_fields)
        template = model()
        self.template = [f.get_db_prep_save(f.pre_save(template, True), connection)
                         for f in self.fields]  # fmt: skip
        self.index = {f.attname: n for n, f in enumerate(self.fields)}
        self.prep = {f.attname: f for f in self.fields}
        quote = connection.ops.quote_name
        # Table and column names come from the model's own metadata, quoted by the backend.
        self.sql = "INSERT INTO {} ({}) VALUES ({})".format(  # noqa: S608
            quote(model._meta.db_table),
            ", ".join(quote(f.column) for f in self.fields),
            ", ".join(["%s"] * len(self.fields)),
        )

    def next_id(self) -> int:
        from django.db.models import Max

        return int(self.model.objects.aggregate(m=Max("pk"))["m"] or 0) + 1

    def insert(self, rows: list[dict[str, Any]]) -> list[int]:
        """Insert the rows (attname → Python value); returns their ids, in order."""
        pk = self.model._meta.pk.attname
        first = self.next_id()
        out, ids = [], []
        index, prep, conn = self.index, self.prep, self.connection
        for n, row in enumerate(rows):
            values = list(self.template)
            values[index[pk]] = first + n
            ids.append(first + n)
            for name, value in row.items():
                values[index[name]] = prep[name].get_db_prep_save(value, conn)
            out.append(values)
        with conn.cursor() as cursor:
            for start in range(0, len(out), 5000):
                cursor.executemany(self.sql, out[start : start + 5000])
        return ids


def load_book(rng: random.Random, n_items: int, book: Book | None = None) -> Book:
    """Load `n_items` more live line items (100 per campaign) into the database.

    The first call also creates advertisers, a publisher and 20 placements (`bulk_create`);
    later calls add campaigns and line items on the same placements (the 100,000-item book
    is the 10,000-item one plus 90,000 more). Line items, creatives and their links go in
    through `FastInsert`.
    """
    from django.db import transaction

    from campaigns import models as cm
    from creatives.models import Creative, CreativeKind, ReviewStatus

    started = time.perf_counter()
    book = book or Book()
    size_weights = {s: w for s, (_, _, w) in SIZES.items()}
    counts = dict.fromkeys(
        ("countries", "device_types", "channels", "frequency_caps", "regions", "keywords",
         "placements", "cpc", "two_sizes"), 0
    )  # fmt: skip
    with transaction.atomic():
        images = _images()
        advertisers = list(cm.Advertiser.objects.order_by("id"))
        if not advertisers:
            advertisers = cm.Advertiser.objects.bulk_create(
                cm.Advertiser(name=f"Bench advertiser {i}") for i in range(20)
            )
            [publisher] = cm.Publisher.objects.bulk_create([cm.Publisher(name="Bench publisher")])
            cm.Placement.objects.bulk_create(
                cm.Placement(
                    publisher=publisher,
                    name=f"Placement {i}",
                    sizes=_distinct(rng, size_weights, rng.randint(2, 4)),
                    floor_cpm=Decimal(rng.choice([0, 0, 0, 25, 50, 100])) / 100,
                )
                for i in range(20)
            )
        placements = list(cm.Placement.objects.order_by("id"))
        book.placements = [(p.key, list(p.sizes)) for p in placements]
        start = datetime.now(UTC) - timedelta(days=1)
        n_campaigns = max(1, n_items // 100)
        first = book.campaigns
        campaigns = cm.Campaign.objects.bulk_create(
            cm.Campaign(
                advertiser=advertisers[i % len(advertisers)],
                name=f"Campaign {i}",
                status=cm.CampaignStatus.ACTIVE,
                start_at=start,
                currency=_weighted(rng, CURRENCIES),
                priority_tier=_weighted(rng, TIERS),
                daily_budget=Decimal("1000000.00"),  # never exhausted during a run
            )
            for i in range(first, first + n_campaigns)
        )
        rows: list[dict[str, Any]] = []
        owners: list[tuple[int, str]] = []  # (row number, size) for each creative
        for i in range(n_items):
            campaign = campaigns[i % n_campaigns]
            sizes = _distinct(rng, size_weights, 1 if rng.random() < 0.75 else 2)
            cpc = rng.random() < 0.05
            bid = rng.uniform(0.2, 2.0) if cpc else min(20.0, max(0.5, rng.lognormvariate(1, 0.6)))
            row: dict[str, Any] = {
                "campaign_id": campaign.pk,
                "name": f"Line item {book.line_items + i}",
                "bid_type": "cpc" if cpc else "cpm",
                "bid": Decimal(f"{bid:.2f}"),  # CPM 0.50-20 (most near 2-4), CPC 0.20-2.00
                "click_url": "https://shop.example/landing" if cpc else "",
                "sizes": sizes,
                "status": "active",
            }
            counts["cpc"] += cpc
            counts["two_sizes"] += len(sizes) > 1
            if rng.random() < 0.40:
                row["countries"] = _distinct(rng, TARGET_COUNTRIES, rng.choice([1, 1, 2, 3]))
                counts["countries"] += 1
            if rng.random() < 0.25:
                row["device_types"] = rng.choice(DEVICE_TARGETS)
                counts["device_types"] += 1
            if rng.random() < 0.10:
                row["channels"] = rng.choice(CHANNEL_TARGETS)
                counts["channels"] += 1
            if rng.random() < 0.15:
                row["frequency_caps"] = [CAP]
                # Capped lines are the valuable ones (retargeting, launches): they bid
                # higher, win often enough for the caps to bite during a run.
                row["bid"] = min(Decimal(40), row["bid"] * 2)
                counts["frequency_caps"] += 1
            if rng.random() < 0.02:
                row["regions"] = rng.choice(REGION_TARGETS)
                counts["regions"] += 1
            if rng.random() < 0.03:
                row["keywords"] = rng.sample(KEYWORDS, 2)
                counts["keywords"] += 1
            rows.append(row)
            owners.extend((i, size) for size in sizes)
        item_ids = FastInsert(cm.LineItem).insert(rows)
        advertiser_of = {c.pk: c.advertiser_id for c in campaigns}
        creative_rows = []
        for i, size in owners:
            adv = advertiser_of[rows[i]["campaign_id"]]
            creative_rows.append(
                {
                    "advertiser_id": adv,
                    "name": f"{rows[i]['name']} {size}",
                    "kind": CreativeKind.IMAGE.value,
                    "status": ReviewStatus.APPROVED.value,
                    "image": images[size],
                    "width": SIZES[size][0],
                    "height": SIZES[size][1],
                    "click_url": f"https://brand{adv}.example/p?li={item_ids[i]}",
                    "adomain": f"brand{adv}.example",
                    "categories": [CATEGORIES[adv % len(CATEGORIES)]],
                }
            )
        creative_ids = FastInsert(Creative).insert(creative_rows)
        FastInsert(cm.LineItemCreative).insert(
            [
                {"line_item_id": item_ids[i], "creative_id": c}
                for (i, _), c in zip(owners, creative_ids, strict=True)
            ]
        )
        targeted = [li for li in item_ids if rng.random() < 0.20]
        counts["placements"] = len(targeted)
        FastInsert(cm.LineItem.placements.through).insert(
            [
                {"lineitem_id": li, "placement_id": p.pk}
                for li in targeted
                for p in rng.sample(placements, rng.randint(1, 3))
            ]
        )
    # Statistics for the query planner, as a production database keeps them. Without them
    # SQLite drives build_snapshot's creative-assignment prefetch from every servable
    # creative, probing the line item id list for each: time grows with creatives times line
    # items (43 s at 10,000 line items, hours at 100,000), not with the book.
    from django.db import connection

    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    book.line_items += n_items
    book.campaigns += n_campaigns
    book.creatives += len(creative_ids)
    book.shares = {k: v / n_items for k, v in counts.items()}
    book.seconds = time.perf_counter() - started
    return book


# --- Consent strings ------------------------------------------------------------------


def tc_strings(vendor_id: int) -> dict[str, str]:
    """Real TC strings for our GVL vendor id: "full" consents to purposes 1-10, special
    feature 1 and the vendor; "contextual" consents to purposes 1 and 2 only (no
    personalisation, so no ids either)."""
    from tests.compliance.tcf_encoder import Core, VendorSection, encode_tc_string

    now = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    vendor = VendorSection(max_id=vendor_id, ranges=((vendor_id, vendor_id),))
    full = Core(
        created=now, last_updated=now, purposes_consent=frozenset(range(1, 11)),
        purposes_li_transparency=frozenset({2, 7, 8, 9, 10}),
        special_feature_opt_ins=frozenset({1}), vendor_consents=vendor,
        vendor_legitimate_interests=vendor, publisher_cc="DE",
    )  # fmt: skip
    contextual = Core(
        created=now, last_updated=now, purposes_consent=frozenset({1, 2}),
        vendor_consents=vendor, publisher_cc="DE",
    )  # fmt: skip
    return {"full": encode_tc_string(full), "contextual": encode_tc_string(contextual)}


def check_consent(strings: dict[str, str], vendor_id: int) -> dict[str, str]:
    """What the project's own policy makes of each consent case (printed as a check)."""
    from compliance.policy import PrivacySignals, evaluate

    cases = {
        "none": PrivacySignals(),
        "gdpr_full": PrivacySignals(gdpr=1, tc_string=strings["full"]),
        "gdpr_contextual": PrivacySignals(gdpr=1, tc_string=strings["contextual"]),
        "usp_1YYN": PrivacySignals(us_privacy="1YYN"),
    }
    out = {}
    for name, signals in cases.items():
        p = evaluate(signals, vendor_id)
        out[name] = f"{p.outcome}{'+ids' if p.use_ids else ''}"
    return out


# --- Requests ---------------------------------------------------------------------------

CONSENT_MIX = [("none", 50), ("gdpr_full", 30), ("gdpr_contextual", 10), ("usp_1YYN", 10)]


@dataclass
class RequestMix:
    """Bodies for both doors drawn from one distribution."""

    book: Book
    tc: dict[str, str]
    rng: random.Random
    shares: dict[str, int] = field(default_factory=dict)

    def _common(self) -> dict[str, Any]:
        rng = self.rng
        consent = _weighted(rng, CONSENT_MIX)
        if consent.startswith("gdpr"):
            country = _weighted(rng, EU_TRAFFIC)
        elif consent == "usp_1YYN":
            country = "US"
        else:
            country = _weighted(rng, NON_EU_TRAFFIC)
        devicetype, channel, ua, _ = rng.choices(DEVICES, [d[3] for d in DEVICES])[0]
        key, sizes = rng.choice(self.book.placements)
        slots = [
            rng.sample(sizes, rng.randint(1, min(2, len(sizes))))
            for _ in range(1 if rng.random() < 0.8 else 2)
        ]
        user = f"user-{rng.randrange(N_USERS):04d}" if rng.random() < 0.30 else None
        keywords = rng.sample(KEYWORDS, rng.randint(1, 2)) if rng.random() < 0.2 else []
        region = {"US": "CA", "DE": "BY", "GB": "ENG"}.get(country) if rng.random() < 0.3 else None
        self.shares[consent] = self.shares.get(consent, 0) + 1
        self.shares["user_id"] = self.shares.get("user_id", 0) + (user is not None)
        return dict(consent=consent, country=country, region=region, devicetype=devicetype,
                    channel=channel, ua=ua, key=key, slots=slots, user=user,
                    keywords=keywords, ip=f"203.0.113.{rng.randrange(1, 255)}")  # fmt: skip

    def v1(self) -> str:
        c = self._common()
        body: dict[str, Any] = {
            "placement": c["key"],
            "slots": [{"id": f"s{n}", "sizes": sizes} for n, sizes in enumerate(c["slots"])],
            "device": {
                "ua": c["ua"], "ip": c["ip"], "devicetype": c["devicetype"],
                "geo": {"country": c["country"]}
                | ({"region": f"{c['country']}-{c['region']}"} if c["region"] else {}),
            },
            "channel": c["channel"],
        }  # fmt: skip
        if c["channel"] == "web":
            body["site"] = {"domain": "news.example", "page": "https://news.example/a/1"}
        else:
            body["app"] = {"bundle": "com.example.app", "name": "Example"}
        if c["keywords"]:
            body["keywords"] = c["keywords"]
        user: dict[str, Any] = {}
        if c["user"]:
            user["id"] = c["user"]
        consent = c["consent"]
        if consent.startswith("gdpr"):
            body["regs"] = {"gdpr": 1}
            user["consent"] = self.tc["full" if consent == "gdpr_full" else "contextual"]
        elif consent == "usp_1YYN":
            body["regs"] = {"us_privacy": "1YYN"}
        if user:
            body["user"] = user
        return json.dumps(body, separators=(",", ":"))

    def openrtb(self) -> str:
        c = self._common()
        rng = self.rng
        imps = []
        for n, sizes in enumerate(c["slots"]):
            fmt = [{"w": SIZES[s][0], "h": SIZES[s][1]} for s in sizes]
            imp: dict[str, Any] = {"id": str(n + 1), "tagid": c["key"], "secure": 1,
                                   "banner": {"format": fmt}}  # fmt: skip
            if rng.random() < 0.3:
                imp["bidfloor"], imp["bidfloorcur"] = rng.choice([(0.5, "USD"), (1.0, "EUR")])
            imps.append(imp)
        geo: dict[str, Any] = {"country": ALPHA3[c["country"]]}
        if c["region"]:
            geo["region"] = c["region"]
        req: dict[str, Any] = {
            "id": f"req-{rng.getrandbits(48):012x}",
            "imp": imps,
            "device": {"ua": c["ua"], "ip": c["ip"], "devicetype": c["devicetype"], "geo": geo},
            "at": 2,
            "tmax": 150,
            "cur": ["USD"],
        }
        if c["channel"] == "web":
            req["site"] = {"domain": "news.example", "page": "https://news.example/a/1",
                           "publisher": {"id": "pub-1"}}  # fmt: skip
        else:
            req["app"] = {"bundle": "com.example.app", "publisher": {"id": "pub-1"}}
        user: dict[str, Any] = {}
        if c["user"]:
            user["id"] = c["user"]
        if c["keywords"]:
            user["keywords"] = ",".join(c["keywords"])
        consent = c["consent"]
        if consent.startswith("gdpr"):
            tc = self.tc["full" if consent == "gdpr_full" else "contextual"]
            if rng.random() < 0.25:  # the 2.5 extension locations
                req["regs"] = {"ext": {"gdpr": 1}}
                user["ext"] = {"consent": tc}
            else:
                req["regs"] = {"gdpr": 1}
                user["consent"] = tc
        elif consent == "usp_1YYN":
            req["regs"] = {"us_privacy": "1YYN"}
        if user:
            req["user"] = user
        return json.dumps(req, separators=(",", ":"))
