"""The report's chart in a real headless Chromium, at desktop and phone widths."""

import os
import shutil
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.utils import timezone

from campaigns.demo import load_demo
from campaigns.demo_accounts import DEMO_USER
from campaigns.models import Advertiser
from reporting.models import HourlyRollup

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists() and not os.environ.get("REQUIRE_BROWSER"):
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)

# Kept for a reviewer to look at; var/ is not committed.
SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"


@pytest.fixture
def delivered(transactional_db: None) -> None:
    data = load_demo()
    li = data.advertiser.campaigns.get(name="Spring hiking boots").line_items.first()
    assert li is not None
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    for back, imps in ((0, 40), (24, 30)):  # now, and the same hour yesterday
        HourlyRollup.objects.create(
            hour=hour - timedelta(hours=back), placement_id=1, line_item_id=li.pk,
            campaign_id=li.campaign_id, advertiser_id=data.advertiser.pk,
            impressions=imps, clicks=4, spend=Decimal("0.18"),
        )  # fmt: skip


CHART = """() => {
  const c = window.reportChart;
  const tick = c.scales.x.ticks[0];
  return {
    axes: Object.keys(c.scales).sort(),
    titles: [c.scales.x.options.title.text, c.scales.y.options.title.text,
             c.scales.clicks.options.title.text],
    tick_font: c.scales.x._resolveTickFontOptions(0).size,
    impressions: c.data.datasets[0].data.reduce((a, b) => a + b, 0),
    previous: c.data.datasets[1].data.reduce((a, b) => a + b, 0),
    width: c.width,
  };
}"""


@pytest.mark.parametrize("width", [1280, 390])
def test_the_report_chart_renders_with_axes_values_and_tooltips(
    live_server: Any, delivered: None, width: int
) -> None:
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    zone = Advertiser.objects.get(name="Acme Outdoor").time_zone
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
            ],
        )  # fmt: skip
        page = browser.new_page(viewport={"width": width, "height": 900})
        outside: list[str] = []
        page.on(
            "request",
            lambda r: outside.append(r.url) if not r.url.startswith(live_server.url) else None,
        )
        page.goto(f"{live_server.url}/accounts/login/?next=/reports/")
        page.fill("#id_username", DEMO_USER[0])
        page.fill("#id_password", DEMO_USER[1])
        page.click("input[type=submit]")
        page.wait_for_selector("#report-chart[data-rendered]")
        chart = page.evaluate(CHART)
        # Hover the bar with delivery: the tooltip names the hour and the values.
        page.locator("#report-chart").scroll_into_view_if_needed()
        box = page.locator("#report-chart").bounding_box()
        assert box is not None
        bar = page.evaluate(
            """() => { const c = window.reportChart, d = c.data.datasets[0].data;
                const el = c.getDatasetMeta(0).data[d.indexOf(40)];
                return {x: el.x, y: (el.y + el.base) / 2}; }"""
        )
        page.mouse.move(box["x"] + bar["x"], box["y"] + bar["y"])
        page.wait_for_function("window.reportChart.tooltip.opacity > 0")
        tooltip = page.evaluate(
            """() => { const t = window.reportChart.tooltip;
                return [t.title.join(" "), t.body.map(b => b.lines.join(" ")).join("; ")]; }"""
        )
        overflow = page.evaluate("document.documentElement.scrollWidth")
        page.screenshot(path=str(SCREENSHOTS / f"report-{width}.png"), full_page=True)
        browser.close()

    assert chart["axes"] == ["clicks", "x", "y"]
    assert chart["titles"][1:] == ["Impressions", "Clicks"]
    assert chart["titles"][0] == f"Hour ({zone})"
    hour = timezone.now().astimezone(ZoneInfo(zone))
    assert tooltip[0] == f"{hour:%H}:00"
    assert "Impressions: 40" in tooltip[1] and "Clicks: 4" in tooltip[1]
    assert chart["impressions"] == 40
    assert chart["previous"] == 30
    assert chart["tick_font"] >= 12  # legible on a phone
    assert overflow <= width  # nothing spills past the screen
    assert outside == []  # no CDN: every script and style comes from the app
