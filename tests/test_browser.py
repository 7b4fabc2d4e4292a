"""The dashboard in a real headless Chromium: log in, read campaigns, open the report."""

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from campaigns.demo import load_demo
from campaigns.demo_accounts import DEMO_USER
from reporting.models import HourlyRollup

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

# CI installs Chromium and sets REQUIRE_BROWSER=1, so there a missing browser fails the run.
if not Path(CHROMIUM).exists() and not os.environ.get("REQUIRE_BROWSER"):
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture
def demo(transactional_db: None) -> None:
    data = load_demo()
    li = data.advertiser.campaigns.get(name="Spring hiking boots").line_items.first()
    assert li is not None
    HourlyRollup.objects.create(
        hour=timezone.now().replace(minute=0, second=0, microsecond=0),
        placement_id=1, line_item_id=li.pk, campaign_id=li.campaign_id,
        advertiser_id=data.advertiser.pk, requests=40, impressions=25, clicks=3,
    )  # fmt: skip


def test_an_advertiser_logs_in_and_reads_the_report(
    live_server: Any, demo: None, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page()
        page.goto(f"{live_server.url}/")
        assert "/accounts/login/" in page.url

        page.fill("#id_username", DEMO_USER[0])
        page.fill("#id_password", DEMO_USER[1])
        page.click("input[type=submit]")
        page.wait_for_selector("h1:has-text('Campaigns')")
        campaigns = page.inner_text("main")

        page.click("header >> text=Reports")
        page.wait_for_selector("#report-chart[data-rendered]")
        impressions = page.inner_text("[data-kpi=impressions]")
        # The chart's hourly bars: today's hours so far, one of them with the 25 impressions.
        bars = page.evaluate("window.reportChart.data.datasets[0].data")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)

        page.click("header >> text=API tokens")
        page.fill("#token-name", "nightly export")
        page.click("text=Create token")
        key = page.inner_text("[data-new-key]")
        page.click("text=Revoke")
        listing = page.inner_text("main")
        browser.close()

    assert "Spring hiking boots" in campaigns
    assert "Tent clearance" in campaigns
    assert impressions == "25"
    assert max(bars) == 25 and sum(bars) == 25
    assert key.startswith("ads_")
    assert "nightly export" in listing and "revoked" in listing and key not in listing
