"""FX rates: the FX_RATES setting in its documented form, ECB reference rates loaded from a
file or a loopback HTTP server on the beat, the last good set kept, stale sets replaced by
the constants, and serving converting with the table its snapshot carries."""

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from campaigns import services
from campaigns.fx.rates import FxError, parse_ecb_xml, parse_fx_setting
from campaigns.fx.services import FROM_FEED, FROM_SETTINGS, current_fx_table, refresh_fx_rates
from campaigns.models import FxRateSet
from campaigns.snapshot import build_snapshot, publish_snapshot
from campaigns.tasks import refresh_fx_rates_task
from serving.app import ServingApp
from tests.conftest import wait_for
from tests.factories import make_campaign, make_line_item, make_placement
from tests.serving.test_app import with_client

ROOT = Path(__file__).resolve().parents[2]


def ecb_xml(day: str, **rates: str) -> bytes:
    cubes = "".join(f'<Cube currency="{code}" rate="{rate}"/>' for code, rate in rates.items())
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01" '
        'xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref">'
        "<gesmes:subject>Reference rates</gesmes:subject>"
        f'<Cube><Cube time="{day}">{cubes}</Cube></Cube></gesmes:Envelope>'
    ).encode()


TODAY = timezone.now().date().isoformat()
# 1 EUR = 2 USD = 1.6 GBP: so a euro is worth 2 dollars and a pound 1.25.
FEED = ecb_xml(TODAY, USD="2.0000", GBP="1.6000", JPY="160.00")


# -- the setting ----------------------------------------------------------------------------


def test_the_documented_form_parses() -> None:
    assert parse_fx_setting("EUR=1.10,GBP=1.27") == {"EUR": Decimal("1.10"), "GBP": Decimal("1.27")}
    assert parse_fx_setting(" eur = 1.10 , ") == {"EUR": Decimal("1.10")}
    assert parse_fx_setting("") == {}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("EUR:1.10", "'EUR:1.10' is not CODE=RATE"),
        ("EURO=1.10", "'EURO' is not an ISO 4217 currency code"),
        ("EUR=1,10", "'10' is not CODE=RATE"),
        ("EUR=abc", "FX_RATES EUR: 'abc' is not a number"),
        ("EUR=0", "FX_RATES EUR: '0' is not a positive rate"),
        ("EUR=NaN", "FX_RATES EUR: 'NaN' is not a positive rate"),
        ("EUR=1.1,EUR=1.2", "EUR is given twice"),
    ],
)
def test_a_malformed_value_is_refused_naming_it(value: str, message: str) -> None:
    with pytest.raises(FxError, match=message):
        parse_fx_setting(value)


def _start(fx_rates: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import django; django.setup()\n"
        "from serving.config import ServingConfig\n"
        "print(sorted(ServingConfig.from_settings().fx.items()))"
    )
    env = {**os.environ, "FX_RATES": fx_rates, "DJANGO_SETTINGS_MODULE": "adsplatform.settings"}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip


def test_the_server_starts_with_the_documented_form_and_refuses_a_typo() -> None:
    good = _start("EUR=1.10,GBP=1.27")
    assert good.returncode == 0, good.stderr
    assert "('EUR', Decimal('1.10')), ('GBP', Decimal('1.27'))" in good.stdout
    bad = _start("EUR=1.10,GBP=1,27")
    assert bad.returncode != 0
    assert "ImproperlyConfigured: FX_RATES: '27' is not CODE=RATE" in bad.stderr


# -- ECB reference rates --------------------------------------------------------------------


def test_ecb_rates_are_turned_into_platform_units() -> None:
    parsed = parse_ecb_xml(FEED, "USD")
    assert parsed.day == date.fromisoformat(TODAY)
    assert parsed.rates == {
        "EUR": Decimal("2.00000000"),
        "USD": Decimal(1),
        "GBP": Decimal("1.25000000"),
        "JPY": Decimal("0.01250000"),
    }
    # With the euro as the platform currency, each rate is the inverse of the ECB's.
    assert parse_ecb_xml(FEED, "EUR").rates["USD"] == Decimal("0.50000000")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"<not xml", "not XML"),
        (b"<Envelope/>", "no <Cube time"),
        (ecb_xml(TODAY, GBP="0.85"), "no rate for the platform currency USD"),
        (ecb_xml(TODAY, USD="-1"), "is not a positive rate"),
        (ecb_xml("yesterday", USD="1.1"), "is not a date"),
        (
            b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
            + ecb_xml(TODAY, USD="&e;").split(b"?>", 1)[1],
            "external entity",
        ),
    ],
)
def test_a_bad_reference_file_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(FxError, match=message):
        parse_ecb_xml(data, "USD")


@pytest.fixture
def feed_file(tmp_path: Path) -> Path:
    path = tmp_path / "eurofxref-daily.xml"
    path.write_bytes(FEED)
    return path


@pytest.fixture
def feed_server() -> Iterator[dict[str, Any]]:
    """A loopback HTTP server answering the reference file (or what a test sets)."""
    state: dict[str, Any] = {"status": 200, "body": FEED, "hits": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state["hits"] += 1
            self.send_response(state["status"])
            self.send_header("content-type", "application/xml")
            self.end_headers()
            self.wfile.write(state["body"])

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/eurofxref-daily.xml"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.django_db
def test_rates_load_from_a_file_and_the_snapshot_carries_them(feed_file: Path) -> None:
    assert current_fx_table().origin == FROM_SETTINGS
    refresh_fx_rates(str(feed_file))
    table = current_fx_table()
    assert table.origin == FROM_FEED
    assert table.rates["EUR"] == Decimal("2.00000000")
    # A currency the file does not list keeps its configured constant.
    assert build_snapshot(1, timezone.now()).fx["EUR"] == Decimal("2.00000000")
    # Loading the same day again updates the one row.
    refresh_fx_rates(str(feed_file))
    assert FxRateSet.objects.count() == 1


@pytest.mark.django_db
def test_a_failing_source_keeps_the_last_good_set(feed_server: dict[str, Any]) -> None:
    refresh_fx_rates(feed_server["url"])
    feed_server["status"] = 500
    with pytest.raises(FxError, match="HTTP 500"):
        refresh_fx_rates(feed_server["url"])
    feed_server["status"], feed_server["body"] = 200, b"<html>maintenance</html>"
    with pytest.raises(FxError):
        refresh_fx_rates(feed_server["url"])
    table = current_fx_table()
    assert (table.origin, table.rates["EUR"]) == (FROM_FEED, Decimal("2.00000000"))
    assert FxRateSet.objects.count() == 1


@pytest.mark.django_db
def test_stale_rates_fall_back_to_the_constants(feed_file: Path, settings: Any) -> None:
    old = (timezone.now() - timedelta(days=9)).date().isoformat()
    feed_file.write_bytes(ecb_xml(old, USD="2.0"))
    refresh_fx_rates(str(feed_file))
    table = current_fx_table()
    assert table.origin == FROM_SETTINGS and table.stale
    assert table.rates["EUR"] == Decimal(settings.FX_RATES["EUR"])
    assert table.age_seconds is not None and table.age_seconds > 8 * 86400
    settings.FX_MAX_AGE_SECONDS = 10 * 86400
    assert current_fx_table().origin == FROM_FEED


def test_the_beat_task_loads_the_rates_over_http(
    celery_worker: None, feed_server: dict[str, Any], settings: Any
) -> None:
    settings.FX_SOURCE = feed_server["url"]
    refresh_fx_rates_task.delay()
    row = wait_for(lambda: FxRateSet.objects.first())
    assert row.rates["EUR"] == "2.00000000"
    assert row.source == feed_server["url"]


@pytest.mark.django_db
def test_the_admin_shows_the_age_of_the_rates(feed_file: Path) -> None:
    refresh_fx_rates(str(feed_file))
    staff = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw")
    client = Client()
    client.force_login(staff)
    page = client.get("/admin/campaigns/fxrateset/").content.decode()
    assert f"Serving uses the reference rates of {TODAY}" in page
    assert " h old" in page


# -- where the rates are used ---------------------------------------------------------------


@pytest.mark.django_db
def test_a_deal_in_a_currency_without_a_rate_is_not_offered_at_a_rate_of_one() -> None:
    placement = make_placement()
    campaign = make_campaign()
    deal = services.create_deal(
        advertiser=campaign.advertiser, deal_id="chf-deal", name="CHF", floor=Decimal("3"),
        currency="CHF",
    )  # fmt: skip
    dealt = make_line_item(campaign, "5.00")
    dealt.deals.set([deal])
    make_line_item(campaign, "1.00")
    snapshot = build_snapshot(1, timezone.now())
    assert [d.deal_id for d in snapshot.deals] == []
    # The deal-only line item has no other deal: it is not in the snapshot at all.
    assert dealt.pk not in {li.id for li in snapshot.line_items}
    assert placement.pk in {p.id for p in snapshot.placements}


@pytest.mark.django_db
def test_serving_converts_floors_with_the_snapshots_table(feed_file: Path) -> None:
    placement = make_placement()
    make_line_item(make_campaign(), "2.50")

    def body() -> dict[str, Any]:
        imp = {"id": "1", "tagid": placement.key, "banner": {"w": 300, "h": 250},
               "bidfloor": 1.5, "bidfloorcur": "EUR"}  # fmt: skip
        return {"id": "a", "imp": [imp], "device": {"ua": "Mozilla/5.0", "ip": "203.0.113.1"}}

    async def scenario(client: httpx.AsyncClient, app: ServingApp) -> int:
        return (await client.post("/openrtb2/auction", json=body())).status_code

    publish_snapshot()
    # The constant (1.08): a floor of 1.62 USD, below the 2.50 bid.
    assert with_client(scenario) == 200
    refresh_fx_rates(str(feed_file))
    publish_snapshot()
    # The feed (2.00): a floor of 3.00 USD, above it.
    assert with_client(scenario) == 204


def test_age_reported_for_metrics_is_none_before_any_load(db: None) -> None:
    from campaigns.fx.services import fx_rates_age_seconds

    assert fx_rates_age_seconds() is None
    FxRateSet.objects.create(
        rates_date=date(2026, 1, 1), rates={"EUR": "1.1"}, source="x",
    )  # fmt: skip
    age = fx_rates_age_seconds(datetime(2026, 1, 2, 6, tzinfo=UTC))
    assert age == 30 * 3600
