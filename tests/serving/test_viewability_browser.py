"""MRC viewability measured by the served markup in a real Chromium, recorded by a real
serving app (granian): `measurable` once, `viewable` once and only after a continuous second
with half the ad in view (30 % for a large ad); less, or under a second, is not viewable."""

import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from django.conf import settings
from redis import Redis

from campaigns.snapshot import publish_snapshot
from tests.factories import make_campaign, make_line_item, make_placement
from tests.faults.services import free_port, serving_granian
from tests.serving.test_serving_path import stream_events

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ViewportSize

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists() and not os.environ.get("REQUIRE_BROWSER"):
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)

pytestmark = pytest.mark.django_db

VIEWPORT: "ViewportSize" = {"width": 1280, "height": 600}
# The ad sits below a spacer taller than the viewport: out of view when the page loads.
PAGE = """<!doctype html><html><body style="margin:0">
<div style="height:2000px"></div><div id="slot"></div><div style="height:2000px"></div>
</body></html>"""


def wait_for(check: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.05)
    raise AssertionError(f"no {what} within {seconds} s")


@contextmanager
def serving_app(tmp_path: Path) -> Iterator[int]:
    """A real serving app (granian) writing to this test's Redis keys; yields its port."""
    port = free_port()
    env = {
        "FAULT_REDIS_URL": settings.REDIS_URL,
        "FAULT_KEY_PREFIX": settings.REDIS_KEY_PREFIX,
        "FAULT_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    with serving_granian(tmp_path / "granian.log", env, port=port) as port:
        yield port


def ask_for_ad(
    port: int, placement_key: str, size: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """The one decision of a /v1/ad request for one slot of `size`."""
    answer = httpx.post(
        f"http://127.0.0.1:{port}/v1/ad",
        json={"placement": placement_key, "slots": [{"id": "top", "sizes": [size]}]},
        headers=headers,
        timeout=10,
    )
    [decision] = answer.json()["decisions"]
    return decision


@contextmanager
def chromium() -> Iterator["Browser"]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield browser
        finally:
            browser.close()


def recorded(redis: Redis, decision: str) -> list[str]:
    """The player and viewability events the serving app wrote for one decision."""
    return [e.r for e in stream_events(redis) if e.t == "evt" and e.d == decision]


@pytest.mark.parametrize(
    ("size", "too_few_rows", "enough_rows"),
    [
        # Under and over the 50 % of an ordinary ad: 40 %, 60 %.
        ("300x250", 100, 150),
        # Under and over the 30 % of an ad of 242,500 px²: 25 %, 40 % (not viewable at 50 %).
        ("970x250", 62, 100),
    ],
)
def test_served_markup_reports_one_viewable_impression_after_a_second_in_view(
    tmp_path: Path, size: str, too_few_rows: int, enough_rows: int
) -> None:
    placement = make_placement(sizes=[size])
    make_line_item(make_campaign(), "2.50", size=size)
    publish_snapshot()
    redis: Redis = Redis.from_url(settings.REDIS_URL)

    with serving_app(tmp_path) as port:
        decision = ask_for_ad(port, placement.key, size)
        with chromium() as browser:
            page = browser.new_page(viewport=VIEWPORT)
            beacons: list[tuple[float, str]] = []
            page.on(
                "request",
                lambda r: beacons.append((time.monotonic(), r.url)) if "/v1/ev/" in r.url else None,
            )
            page.set_content(PAGE)
            # As a publisher inserts the /v1/ad answer: innerHTML, so only handlers run.
            page.evaluate(
                "m => { document.getElementById('slot').innerHTML = m }", decision["markup"]
            )

            # Measurable once the impression pixel has loaded, while out of view.
            wait_for(lambda: "measurable" in recorded(redis, decision["id"]), 20, "measurable")

            def scroll_to_show(pixels: int) -> None:
                """Scroll so that the ad's top `pixels` rows are in the viewport."""
                page.evaluate(
                    "px => { const top = document.getElementById('slot').offsetTop;"
                    " window.scrollTo(0, top - innerHeight + px) }",
                    pixels,
                )

            # In view for well under a second, then out: not viewable. In the page, so
            # that a slow round trip to the browser cannot stretch the 200 ms.
            page.evaluate(
                "() => new Promise(done => { const slot = document.getElementById('slot');"
                " window.scrollTo(0, slot.offsetTop - innerHeight + 250);"
                " setTimeout(() => { window.scrollTo(0, 0); done() }, 200) })"
            )
            # Too little of the ad in view for 1.5 s: not viewable.
            scroll_to_show(too_few_rows)
            time.sleep(1.5)
            scroll_to_show(-200)
            time.sleep(1.5)
            assert [u for _, u in beacons if "e=viewable" in u] == []

            # Enough of it in view: viewable after a second, once.
            shown_at = time.monotonic()
            scroll_to_show(enough_rows)
            wait_for(lambda: "viewable" in recorded(redis, decision["id"]), 20, "viewable")
            # Out of view and back for longer than a second: still one viewable impression.
            scroll_to_show(-200)
            time.sleep(0.3)
            scroll_to_show(enough_rows)
            time.sleep(2.0)

    viewable_beacons = [t for t, u in beacons if "e=viewable" in u]
    assert len(viewable_beacons) == 1
    assert viewable_beacons[0] - shown_at >= 1.0
    width, height = size.split("x")
    assert [u.rsplit("?", 1)[1] for _, u in beacons] == [
        f"e=measurable&w={width}&h={height}",  # the box's rendered size: not stuffed
        "e=viewable",
    ]
    assert recorded(redis, decision["id"]) == ["measurable", "viewable"]


# A stuffer's page: the ad inside a 1x1 frame, fired as if shown.
STUFFED_PAGE = """<!doctype html><html><body style="margin:0">
<iframe id="frame" width="1" height="1" style="border:0" srcdoc="<body style='margin:0'>">
</iframe></body></html>"""
DESKTOP_CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)


def test_markup_in_a_hidden_one_pixel_frame_is_taken_back_as_pixel_stuffing(
    tmp_path: Path,
) -> None:
    placement = make_placement(sizes=["300x250"])
    campaign = make_campaign()
    make_line_item(campaign, "2.50", size="300x250")
    publish_snapshot()
    redis: Redis = Redis.from_url(settings.REDIS_URL)

    with serving_app(tmp_path) as port:
        decision = ask_for_ad(port, placement.key, "300x250", {"user-agent": DESKTOP_CHROME})
        with chromium() as browser:
            page = browser.new_page(viewport=VIEWPORT, user_agent=DESKTOP_CHROME)
            beacons: list[str] = []
            page.on("request", lambda r: beacons.append(r.url) if "/v1/ev/" in r.url else None)
            page.set_content(STUFFED_PAGE)
            page.wait_for_function("document.getElementById('frame').contentDocument.body")
            page.evaluate(
                "m => { document.getElementById('frame').contentDocument.body.innerHTML = m }",
                decision["markup"],
            )
            wait_for(lambda: "measurable" in recorded(redis, decision["id"]), 20, "measurable")
            taken_back = wait_for(
                lambda: [e for e in stream_events(redis) if e.t == "ivi"], 20, "a take-back"
            )

    assert [u.rsplit("?", 1)[1] for u in beacons] == ["e=measurable&w=1&h=1"]
    assert [(e.d, e.iv) for e in taken_back] == [(decision["id"], "pixel_stuffing")]
    [day] = redis.scan_iter(f"{settings.REDIS_KEY_PREFIX}spend:2*:{campaign.pk}")
    assert redis.hmget(day, "s", "i") == [b"0", b"0"]  # the win's charge and count, back
