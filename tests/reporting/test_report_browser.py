"""The reports' charts (the report page's and the measurement page's, one shared script) in a
real headless Chromium, at desktop and phone widths."""

import os
import shutil
from datetime import datetime, timedelta
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
from reporting.models import DemandHourly, HourlyRollup

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists() and not os.environ.get("REQUIRE_BROWSER"):
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)

# Kept for a reviewer to look at; var/ is not committed.
SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"


@pytest.fixture
def delivered(transactional_db: None) -> datetime:
    """The demo's delivery this hour and the same hour yesterday; returns this hour."""
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
    return hour


def draw_chart(
    live_server: Any, name: str, path: str, read_chart: str, bar_value: int, width: int
) -> tuple[dict[str, Any], list[str]]:
    """Log in as the demo user, open `path` at `width` and wait for its chart
    (`#{name}-chart`, `window.{name}Chart`) to be drawn; hover the first dataset's bar of
    `bar_value` and keep a screenshot. Checks what every chart must be (legible, within the
    screen, served by the app alone) and returns what `read_chart` (which reads `tick_font`
    among the rest) reads of the chart, and the tooltip's title and body."""
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    selector, chart_js = f"#{name}-chart", f"window.{name}Chart"
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
        page.goto(f"{live_server.url}/accounts/login/?next={path}")
        page.fill("#id_username", DEMO_USER[0])
        page.fill("#id_password", DEMO_USER[1])
        page.click("input[type=submit]")
        page.wait_for_selector(f"{selector}[data-rendered]")
        chart = page.evaluate(read_chart)
        page.locator(selector).scroll_into_view_if_needed()
        box = page.locator(selector).bounding_box()
        assert box is not None
        bar = page.evaluate(
            f"""value => {{ const c = {chart_js}, d = c.data.datasets[0].data;
                const el = c.getDatasetMeta(0).data[d.indexOf(value)];
                return {{x: el.x, y: (el.y + el.base) / 2}}; }}""",
            bar_value,
        )
        page.mouse.move(box["x"] + bar["x"], box["y"] + bar["y"])
        page.wait_for_function(f"{chart_js}.tooltip.opacity > 0")
        tooltip = page.evaluate(
            f"""() => {{ const t = {chart_js}.tooltip;
                return [t.title.join(" "), t.body.map(b => b.lines.join(" ")).join("; ")]; }}"""
        )
        overflow = page.evaluate("document.documentElement.scrollWidth")
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
        browser.close()

    assert chart["tick_font"] >= 12  # legible on a phone
    assert overflow <= width  # nothing spills past the screen
    assert outside == []  # no CDN: every script and style comes from the app
    return chart, tooltip


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
    live_server: Any, delivered: datetime, width: int
) -> None:
    zone = Advertiser.objects.get(name="Acme Outdoor").time_zone
    # Hover the bar with delivery: the tooltip names the hour and the values.
    chart, tooltip = draw_chart(live_server, "report", "/reports/", CHART, 40, width)

    assert chart["axes"] == ["clicks", "x", "y"]
    assert chart["titles"][1:] == ["Impressions", "Clicks"]
    assert chart["titles"][0] == f"Hour ({zone})"
    # The hour the rows were written for (the clock may have passed into the next one since).
    hour = delivered.astimezone(ZoneInfo(zone))
    assert tooltip[0] == f"{hour:%H}:00"
    assert "Impressions: 40" in tooltip[1] and "Clicks: 4" in tooltip[1]
    assert chart["impressions"] == 40
    assert chart["previous"] == 30


@pytest.fixture
def measured(transactional_db: None) -> datetime:
    """Requests, wins and impressions of the demo's line item this hour; returns the hour."""
    data = load_demo()
    li = data.advertiser.campaigns.get(name="Spring hiking boots").line_items.first()
    assert li is not None
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    DemandHourly.objects.create(
        hour=hour, placement_id=1,
        line_item_id=li.pk, buyer_id=0, currency=data.advertiser.currency, door="v1",
        campaign_id=li.campaign_id, advertiser_id=data.advertiser.pk,
        requests=50, wins=20, impressions=12,
    )  # fmt: skip
    return hour


MEASUREMENT_CHART = """() => {
  const c = window.measurementChart;
  const total = (i) => c.data.datasets[i].data.reduce((a, b) => a + b, 0);
  return {
    axes: Object.keys(c.scales).sort(),
    x_title: c.scales.x.options.title.text,
    labels: c.data.datasets.map((d) => d.label),
    totals: [total(0), total(1), total(2)],
    tick_font: c.scales.x._resolveTickFontOptions(0).size,
  };
}"""


@pytest.mark.parametrize("width", [1280, 390])
def test_the_measurement_chart_renders_with_its_series_and_tooltips(
    live_server: Any, measured: datetime, width: int
) -> None:
    zone = Advertiser.objects.get(name="Acme Outdoor").time_zone
    # Hover the hour with requests: the tooltip names the hour and the three values.
    chart, tooltip = draw_chart(
        live_server, "measurement", "/reports/measurement/", MEASUREMENT_CHART, 50, width
    )

    assert chart["axes"] == ["x", "y"]
    assert chart["x_title"] == f"Hour ({zone})"
    assert chart["labels"] == ["Requests", "Wins", "Impressions"]
    assert chart["totals"] == [50, 20, 12]
    hour = measured.astimezone(ZoneInfo(zone))
    assert tooltip[0].endswith(f"{hour:%H}:00")
    assert "Requests: 50" in tooltip[1]
    assert "Wins: 20" in tooltip[1]
    assert "Impressions: 12" in tooltip[1]
