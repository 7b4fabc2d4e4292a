"""The live dashboard in a real Chromium against a real granian serving the whole product
(`adsplatform.asgi`: pages, websockets and /v1/ad in one server), the test database, Redis
and a real Celery worker running the publisher task once a second as beat would: ad
requests sent to /v1/ad change the campaign page's and the ops page's numbers without a
reload, and a member of another organisation opening the campaign's socket gets nothing."""

import os
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.contrib.auth import get_user_model

from campaigns.models import Membership, Role
from campaigns.snapshot import publish_snapshot
from reporting.tasks import publish_live_task
from tests.conftest import CHROMIUM
from tests.factories import make_advertiser, make_campaign, make_line_item, make_placement
from tests.faults.services import (
    free_port,
    product_granian,
    project_env,
    shared_database_url,
    wait_listening,
)

if not Path(CHROMIUM).exists() and not os.environ.get("REQUIRE_BROWSER"):
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """granian (one worker) on the test database; DEBUG as the demo runs it (static files
    from the apps, no collectstatic)."""
    database_url = shared_database_url()
    if database_url is None:
        pytest.skip("a second process needs the test database: run on Postgres (CI does)")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = project_env(
        DATABASE_URL=database_url, DJANGO_DEBUG="true", SERVING_PUBLIC_URL=base,
        LOG_LEVEL="WARNING",
    )  # fmt: skip
    process = product_granian(port, env=env, log=tmp_path / "granian.log")
    try:
        wait_listening(base, process)
        yield base
    finally:
        process.stop()


@pytest.fixture
def beat(celery_worker: None) -> Iterator[None]:
    """The publish-live beat entry, once a second, into the real worker."""
    stop = threading.Event()

    def tick() -> None:
        while not stop.is_set():
            publish_live_task.delay()
            stop.wait(1.0)

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(5)


def _sign_in(browser: Any, base: str, username: str, then: str) -> Any:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{base}/accounts/login/?next={then}")
    page.fill("#id_username", username)
    page.fill("#id_password", "pw-123456789")
    page.click("main input[type=submit], main button[type=submit]")
    page.wait_for_url(f"{base}{then}")
    return page


def _user(name: str, advertiser: Any = None, **extra: Any) -> Any:
    user = get_user_model().objects.create_user(name, password="pw-123456789", **extra)
    if advertiser is not None:
        Membership.objects.create(user=user, advertiser=advertiser, role=Role.ANALYST)
    return user


def _text(page: Any, name: str) -> str:
    return str(page.inner_text(f"[data-live='{name}']"))


def _wait_text(page: Any, name: str, good: Any, seconds: float) -> str:
    """The text of a live figure once `good(text)` (polled from here: the page's CSP
    forbids the eval Playwright's own waiting would need)."""
    deadline = time.monotonic() + seconds
    while True:
        text = _text(page, name)
        if good(text) or time.monotonic() > deadline:
            return text
        time.sleep(0.1)


# A page's own socket to another campaign, opened from its JavaScript: what it receives.
PROBE = """async (path) => {
  const seen = {opened: false, messages: 0, code: null};
  await new Promise((done) => {
    const socket = new WebSocket("ws://" + location.host + path);
    socket.onopen = () => { seen.opened = true; };
    socket.onmessage = () => { seen.messages += 1; };
    socket.onclose = (event) => { seen.code = event.code; done(); };
    setTimeout(done, 4000);
  });
  return seen;
}"""


def test_the_campaign_and_ops_pages_follow_traffic_without_a_reload(
    server: str, beat: None, browser: Any, settings: Any
) -> None:
    # The server checks passwords with the project's hashers, not the tests' fast one.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    # given: a campaign of Acme buying at the 10.00 floor (10.01 CPM: 0.01 a win), a member
    # of Acme, a member of another organisation, a staff user
    acme, rival = make_advertiser("Acme"), make_advertiser("Rival")
    placement = make_placement(sizes=["300x250"], floor=Decimal("10.00"))
    ours = make_campaign(acme, daily_budget=Decimal("1.00"))
    make_line_item(ours, "20.00")
    theirs = make_campaign(rival)
    _user("alice", acme)
    _user("bob", rival)
    _user("adops", is_staff=True)
    publish_snapshot()
    blocked: list[str] = []

    page = _sign_in(browser, server, "alice", f"/campaigns/{ours.pk}/")
    page.on("console", lambda m: blocked.append(m.text) if "Content Security" in m.text else None)
    page.wait_for_selector("[data-live-url][data-live-ticks]")
    before = {name: _text(page, name) for name in ("spend_today", "wins_today", "spend_share")}
    page.evaluate("window.notReloaded = true")

    # when: three ad requests fill from our campaign
    with httpx.Client(base_url=server, timeout=10) as http:
        body = {"placement": placement.key, "slots": [{"id": "s", "sizes": ["300x250"]}]}
        statuses = [http.post("/v1/ad", json=body).status_code for _ in range(3)]
    _wait_text(page, "wins_today", lambda text: text == "3", 15)
    after = {name: _text(page, name) for name in ("spend_today", "wins_today", "spend_share")}
    still_the_same_page = page.evaluate("window.notReloaded === true")
    status = page.inner_text("[data-live-status]")
    pacing_rate = _text(page, "pacing_rate")

    # and: the ops page, with traffic flowing (each serving process publishes every 5 s)
    ops = _sign_in(browser, server, "adops", "/ops/live/")
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(base_url=server, timeout=10) as http:
            while not stop.is_set():
                http.post("/v1/ad", json=body)
                stop.wait(0.1)

    sender = threading.Thread(target=traffic, daemon=True)
    sender.start()
    try:
        _wait_text(ops, "v1.rps", lambda text: text not in ("0.0", "\u2013"), 25)
        ops_figures = {n: _text(ops, n) for n in ("v1.rps", "v1.fill", "processes", "vast.fill")}
    finally:
        stop.set()
        sender.join(5)

    # and: a member of another organisation, on a page of his own, opens our socket
    other = _sign_in(browser, server, "bob", f"/campaigns/{theirs.pk}/")
    other.wait_for_selector("[data-live-url][data-live-ticks]")
    probe = other.evaluate(PROBE, f"/ws/live/campaign/{ours.pk}")
    own_page = _text(other, "spend_today")
    denied_page = other.goto(f"{server}/campaigns/{ours.pk}/")
    # and: he cannot open the ops socket either
    other.goto(f"{server}/campaigns/{theirs.pk}/")
    ops_probe = other.evaluate(PROBE, "/ws/live/ops")

    # then
    assert statuses == [200, 200, 200]
    assert before == {"spend_today": "0.00", "wins_today": "0", "spend_share": "0.0%"}
    assert after == {"spend_today": "0.03", "wins_today": "3", "spend_share": "3.0%"}
    assert still_the_same_page is True
    assert status == "Live"
    assert pacing_rate == "100%"
    assert float(ops_figures["v1.rps"].replace(",", "")) > 0
    assert ops_figures["v1.fill"] == "100.0%"
    assert ops_figures["processes"] == "1"
    assert ops_figures["vast.fill"] == "\u2013"
    assert probe["opened"] is False and probe["messages"] == 0
    assert ops_probe["opened"] is False and ops_probe["messages"] == 0
    assert own_page == "0.00"
    assert denied_page is not None and denied_page.status == 404
    assert blocked == []
