"""The advertiser console end to end in Chromium, on the real stack: the console and admin on
the live server, Celery publishing the snapshot, the serving app answering /v1/ad, the
rollups and the report. Plus an analyst's read-only walk and another organisation's 404s.

Screenshots of the main pages at 1280 and 390 px wide land in var/screenshots/ (ignored by
git) for a reviewer to look at.
"""

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from campaigns.models import Advertiser, Campaign, LineItem, Membership, Placement, Publisher, Role
from campaigns.snapshot import published_version
from creatives.models import Creative, CreativeKind
from creatives.placeholders import ERROR_TIMEOUT, HTML5_LOAD_TIMEOUT_MS
from creatives.rendering import render_markup
from reporting.ingest import ingest_events
from serving.app import ServingApp
from tests.conftest import CHROMIUM, wait_for
from tests.creatives import media
from tests.creatives.helpers import SERVED, served
from tests.factories import (
    LANDING_URL,
    make_advertiser,
    make_campaign,
    make_html5_creative,
    make_image_creative,
    verify_shop_domain,
)

if not Path(CHROMIUM).exists() and not os.environ.get("REQUIRE_BROWSER"):
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)

ZONE = "Europe/Paris"
SHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"
WIDTHS = {"desktop": 1280, "phone": 390}
# A 1x1 GIF: an impression pixel that loads, so it arms the watchdog.
PIXEL = "data:image/gif;base64,R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw=="
pytestmark = pytest.mark.urls("tests.media_urls")


def _user(name: str, org: Advertiser | None, role: str = Role.ADMIN, **extra: Any) -> Any:
    user = get_user_model().objects.create_user(name, password="pw", **extra)
    if org is not None:
        Membership.objects.create(user=user, advertiser=org, role=role)
    return user


def _sign_in(browser: Any, base: str, username: str) -> Any:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", "pw")
    page.click("main input[type=submit], main button[type=submit]")
    page.wait_for_url(f"{base}/")
    return page


def shoot(page: Any, name: str) -> dict[str, bool]:
    """Screenshots at both widths; whether the page fits the width without a sideways scroll."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    fits = {}
    for label, width in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(SHOTS / f"{name}-{label}.png"), full_page=True)
        fits[label] = page.evaluate(
            "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        )
    page.set_viewport_size({"width": 1280, "height": 900})
    return fits


async def _ask(placement: str, country: str, times: int = 1) -> list[httpx.Response]:
    """Ad requests through the real serving app (a fresh one: it loads the latest snapshot)."""
    app = ServingApp.from_settings()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ads.test") as http:
            return [
                await http.post(
                    "/v1/ad",
                    json={
                        "placement": placement,
                        "slots": [{"id": "top", "sizes": ["300x250"]}],
                        "device": {"geo": {"country": country}},
                    },
                )
                for _ in range(times)
            ]
    finally:
        await app.shutdown()


async def _track(urls: list[str]) -> list[int]:
    app = ServingApp.from_settings()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ads.test") as http:
            return [(await http.get(url)).status_code for url in urls]
    finally:
        await app.shutdown()


def run(coro: Any) -> Any:
    """Run a coroutine on a thread of its own: Playwright's loop holds this one."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _hours_now() -> list[str]:
    """This hour and the next in the organisation's zone, as week-grid cells."""
    cells = []
    for ahead in (0, 1):
        local = (timezone.now() + timedelta(hours=ahead)).astimezone(ZoneInfo(ZONE))
        cells.append(f"{local.weekday()}:{local.hour}")
    return cells


def _wait_for_publish_after(version: int) -> int:
    return wait_for(lambda: (v := published_version()) > version and v, timeout=30)


def test_an_advertiser_runs_a_campaign_from_the_console(
    live_server: Any, celery_worker: None, browser: Any, settings: Any, tmp_path: Path
) -> None:
    # The demo's way of serving creatives: the app serves its own media (framed).
    settings.CDN_BASE_URL = f"{live_server.url}/media"
    org = Advertiser.objects.create(name="Acme Outdoor", time_zone=ZONE, currency="EUR")
    verify_shop_domain(org)  # ad ops verified the landing domain
    _user("ana", org)
    _user("adops", None, is_staff=True, is_superuser=True)
    publisher = Publisher.objects.create(name="Daily Trail News")
    placement = Placement.objects.create(publisher=publisher, name="Home top", sizes=["300x250"])
    base = live_server.url
    page = _sign_in(browser, base, "ana")

    # Step 1: the campaign's settings.
    page.click("[data-action=create-campaign]")
    page.fill("#id_name", "Spring boots")
    page.fill("#id_daily_budget", "20")
    shots = {"campaign-new": shoot(page, "campaign-new")}
    page.click("main form button[type=submit]")
    campaign = wait_for(lambda: Campaign.objects.filter(name="Spring boots").first())

    # Step 2: a line item targeting two countries and this hour of the week.
    page.wait_for_url(f"**/campaigns/{campaign.pk}/line-items/new/?step=2")
    page.fill("#id_name", "Boots US CA")
    page.fill("#id_bid", "3.00")
    page.select_option("#id_countries", ["US", "CA"])
    for cell in _hours_now():
        page.check(f"input[name=dayparts][value='{cell}']")
    shots["line-item-form"] = shoot(page, "line-item-form")
    page.click("form.line-item-form button[type=submit]")
    page.wait_for_url("**/creatives/?step=3")
    li = LineItem.objects.get(name="Boots US CA")

    # Step 3: upload an image and an HTML5 bundle, then show both.
    uploads = {
        "image": ("#id_image", "boots.png", "image/png", media.image_bytes(300, 250)),
        "html5": ("#id_bundle", "boots.zip", "application/zip", media.html5_zip()),
    }
    for kind, (field, filename, mime, data) in uploads.items():
        page.click("[data-action=upload-creative]")
        page.click(f"main nav a[href*='kind={kind}']")
        page.fill("#id_name", f"Boots {kind}")
        page.fill("#id_click_url", LANDING_URL)
        page.fill("#id_size", "300x250")
        page.set_input_files(field, files=[{"name": filename, "mimeType": mime, "buffer": data}])
        page.click("main form button[type=submit]")
        page.wait_for_url(f"**/line-items/{li.pk}/creatives/")
    created = {c.kind: c for c in Creative.objects.filter(advertiser=org)}
    for creative in created.values():
        page.check(f"#use-{creative.pk}")
    page.click("main form button[type=submit]")
    page.wait_for_url(f"**/line-items/{li.pk}/")
    pending = page.inner_text("[data-assignments]")
    shots["line-item"] = shoot(page, "line-item")

    # Ad ops approve both in the admin's review queue.
    staff = browser.new_page()
    staff.goto(f"{base}/admin/login/")
    staff.fill("#id_username", "adops")
    staff.fill("#id_password", "pw")
    staff.click("input[type=submit]")
    staff.goto(f"{base}/admin/creatives/reviewqueueentry/")
    staff.check("#action-toggle")
    staff.select_option("select[name=action]", "approve_selected")
    staff.click("button[name=index]")
    approved = staff.inner_text("ul.messagelist")

    # Activate, and serving fills with it.
    version = published_version()
    page.goto(f"{base}/campaigns/{campaign.pk}/")
    page.click("[data-action=activate]")
    page.wait_for_selector("[data-action=pause]")
    _wait_for_publish_after(version)
    delivery = page.inner_text("[data-delivery]")
    shots["campaign"] = shoot(page, "campaign")
    answers = run(_ask(placement.key, "US", times=12))
    elsewhere = run(_ask(placement.key, "MX"))[0]
    decisions = [a.json()["decisions"][0] for a in answers if a.status_code == 200]
    served = {d["creative"]: d for d in decisions}
    html5 = served[created["html5"].pk]

    # The HTML5 frame renders on a page: its own document loads (not the error page a
    # refused frame shows) and says so to the watchdog.
    publisher_page = browser.new_page()
    # A publisher's page of its own (ours send a CSP without inline handlers).
    publisher_page.set_content("<!doctype html><title>Trail news</title><div id=slot></div>")
    publisher_page.evaluate(
        "m => { document.getElementById('slot').innerHTML = m }", html5["markup"]
    )
    publisher_page.wait_for_selector("#slot iframe[data-loaded='1']", timeout=10_000)
    frame = next(f for f in publisher_page.frames if "/media/" in f.url)
    frame_image = frame.evaluate(
        "document.querySelector('#ad img') && document.querySelector('#ad img').naturalWidth"
    )

    # An impression and a click, rolled up; today's report (in Paris) shows them.
    tracked = run(_track([html5["impression_url"], html5["click_url"]]))
    wait_for(lambda: ingest_events().counted or None, timeout=15)
    page.goto(f"{base}/reports/?range=today")
    impressions = page.inner_text("[data-kpi=impressions]")
    clicks = page.inner_text("[data-kpi=clicks]")
    zone = page.inner_text("[data-zone]")
    shots["report"] = shoot(page, "report")
    csv_link = page.get_attribute("[data-download=campaign-csv]", "href")
    csv_text = page.request.get(f"{base}{csv_link}").text()

    # Pause: no more fill once the snapshot without it is out.
    version = published_version()
    page.goto(f"{base}/campaigns/{campaign.pk}/")
    page.click("[data-action=pause]")
    page.wait_for_selector("[data-action=resume]")
    _wait_for_publish_after(version)
    after_pause = run(_ask(placement.key, "US", times=3))
    page.goto(f"{base}/")
    shots["campaigns"] = shoot(page, "campaigns")
    pages = {
        "creatives": "/creatives/",
        "creative": f"/creatives/{created['html5'].pk}/",
        "bulk": "/bulk/",
        "members": "/members/",
    }
    for name, url in pages.items():
        page.goto(f"{base}{url}")
        shots[name] = shoot(page, name)

    assert "Pending review" in pending
    assert "Approved 2 creative(s)." in approved
    assert delivery == "Delivering"
    assert len(decisions) == 12 and set(served) <= {c.pk for c in created.values()}
    assert all(d["line_item"] == li.pk for d in decisions)
    assert elsewhere.status_code == 204  # Mexico is not targeted
    assert frame_image == 60  # the bundle's logo, loaded inside the frame
    assert tracked[0] in (200, 204) and tracked[1] == 302
    assert (impressions, clicks, zone) == ("1", "1", ZONE)
    assert "Spring boots" in csv_text
    assert [a.status_code for a in after_pause] == [204, 204, 204]
    # Every main page fits a phone's width (the header wraps, tables scroll in themselves).
    assert {name: fit for name, fit in shots.items() if not all(fit.values())} == {}


def test_an_analyst_reads_everything_and_writes_nothing(live_server: Any, browser: Any) -> None:
    campaign = make_campaign()
    org = campaign.advertiser
    creative = make_image_creative(org)
    li = LineItem.objects.create(campaign=campaign, name="Read only", bid=1, sizes=["300x250"])
    _user("reader", org, Role.ANALYST)
    base = live_server.url
    page = _sign_in(browser, base, "reader")

    seen = {}
    for url in ("/", f"/campaigns/{campaign.pk}/", f"/line-items/{li.pk}/", "/creatives/",
                f"/creatives/{creative.pk}/", "/bulk/", "/members/"):  # fmt: skip
        page.goto(f"{base}{url}")
        seen[url] = page.content()
    writes = {}
    for url in ("/campaigns/new/", f"/campaigns/{campaign.pk}/edit/",
                f"/campaigns/{campaign.pk}/line-items/new/", f"/line-items/{li.pk}/edit/",
                "/creatives/new/", f"/creatives/{creative.pk}/edit/"):  # fmt: skip
        writes[url] = page.goto(f"{base}{url}").status
    posts = {
        url: page.request.post(f"{base}{url}", headers={"X-CSRFToken": _csrf(page)}).status
        for url in (
            f"/campaigns/{campaign.pk}/pause/",
            f"/line-items/{li.pk}/archive/",
            f"/creatives/{creative.pk}/archive/",
        )
    }

    assert all("data-write-actions" not in html for html in seen.values())
    assert "New campaign" not in seen["/"] and "Upload image" not in seen["/creatives/"]
    assert 'id="bulk-upload"' not in seen["/bulk/"] and 'id="invite"' not in seen["/members/"]
    assert set(writes.values()) == {403}
    assert set(posts.values()) == {403}


def _csrf(page: Any) -> str:
    return next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")


def test_another_organisations_pages_are_not_found(live_server: Any, browser: Any) -> None:
    theirs = make_campaign()
    creative = make_image_creative(theirs.advertiser)
    li = LineItem.objects.create(campaign=theirs, name="Theirs", bid=1, sizes=["300x250"])
    mine = make_campaign()
    _user("outsider", mine.advertiser, Role.ADMIN)
    base = live_server.url
    page = _sign_in(browser, base, "outsider")

    codes = {
        url: page.goto(f"{base}{url}").status
        for url in (
            f"/campaigns/{theirs.pk}/",
            f"/campaigns/{theirs.pk}/edit/",
            f"/campaigns/{theirs.pk}/line-items/new/",
            f"/line-items/{li.pk}/",
            f"/line-items/{li.pk}/edit/",
            f"/line-items/{li.pk}/creatives/",
            f"/creatives/{creative.pk}/",
            f"/creatives/{creative.pk}/edit/",
            f"/creatives/{creative.pk}/preview/",
            f"/reports/pacing/{theirs.pk}/",
            f"/bulk/export/?organisation={theirs.advertiser_id}",
            f"/reports/?campaign={theirs.pk}",
        )
    }
    report_download = page.request.get(f"{base}/reports/download/campaign.csv?campaign={theirs.pk}")
    report = page.goto(f"{base}/reports/?range=last_30_days")
    download = page.request.get(f"{base}/reports/download/campaign.csv?range=last_30_days")

    assert set(codes.values()) == {404}, codes
    assert report_download.status == 404
    assert report.status == 200 and theirs.name not in page.content()
    assert download.status == 200 and theirs.name not in download.text()
    assert creative.kind == CreativeKind.IMAGE


def test_the_render_watchdog_reports_a_frame_that_failed_to_load(
    live_server: Any, browser: Any, settings: Any
) -> None:
    # Served from a URL that answers X-Frame-Options: DENY the frame shows an error page and
    # still fires its load event; only the creative's own document says it loaded.
    creative = make_html5_creative(make_advertiser())
    beacons: list[str] = []

    def beacon(route: Any) -> None:
        beacons.append(route.request.url)
        route.fulfill(status=204)

    def show(cdn: str) -> list[str]:
        settings.CDN_BASE_URL = cdn
        markup = served(render_markup(Creative.objects.for_rendering().get(pk=creative.pk)))
        markup = markup.replace(SERVED["%%IMP_URL%%"], PIXEL).replace(
            f",{HTML5_LOAD_TIMEOUT_MS})",
            ",1500)",  # the watchdog's wait, shortened
        )
        page = browser.new_page()
        page.route("https://ads.example.com/v1/err/**", beacon)
        page.set_content("<!doctype html><div id=slot></div>")
        page.evaluate("m => { document.getElementById('slot').innerHTML = m }", markup)
        page.wait_for_timeout(2500)
        loaded = page.locator("#slot iframe[data-loaded='1']").count()
        page.close()
        return [*beacons, f"loaded={loaded}"]

    good = show(f"{live_server.url}/media")
    refused = show(f"{live_server.url}/accounts/login/?asset=")  # X-Frame-Options: DENY

    assert good == ["loaded=1"]
    assert len(refused) == 2 and refused[0].endswith(f"?code={ERROR_TIMEOUT}")
    assert refused[1] == "loaded=0"
