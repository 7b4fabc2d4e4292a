"""The live dashboard's websockets through the real ASGI application and the real channels
layer on Redis: who may connect, what each group receives, and what a tick reads."""

import asyncio
from decimal import Decimal
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.db import connections
from django.test import Client

from adsplatform.asgi import application
from campaigns.models import Membership, Role
from campaigns.snapshot import publish_snapshot
from reporting.live.figures import advance_samples, door_rates
from reporting.live.publisher import publish_live
from serving.app import ServingApp
from tests.factories import make_advertiser, make_campaign, make_line_item, make_placement
from tests.live_sockets import WebsocketCommunicator

pytestmark = pytest.mark.django_db(transaction=True)
ORIGIN = (b"origin", b"http://127.0.0.1")


def _cookie(user: Any) -> tuple[bytes, bytes]:
    browser = Client()
    browser.force_login(user)
    return (b"cookie", f"sessionid={browser.cookies['sessionid'].value}".encode())


def _user(name: str, advertiser: Any = None, **extra: Any) -> Any:
    user = get_user_model().objects.create_user(name, password="pw-123456789", **extra)
    if advertiser is not None:
        Membership.objects.create(user=user, advertiser=advertiser, role=Role.ANALYST)
    return user


def _socket(path: str, *headers: tuple[bytes, bytes]) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, path, headers=list(headers))


async def _ask(app: ServingApp, placement: str, sizes: list[str], times: int) -> list[int]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ads.test") as http:
        body = {"placement": placement, "slots": [{"id": "s", "sizes": sizes}]}
        return [(await http.post("/v1/ad", json=body)).status_code for _ in range(times)]


async def _close_thread_connections() -> None:
    # The consumers' and the publisher's queries ran in asgiref's thread: its connection
    # would outlive the test and keep the test database from being dropped.
    await sync_to_async(connections.close_all)()


async def _next_figures(socket: WebsocketCommunicator) -> dict[str, Any]:
    while True:
        message = await socket.receive_json_from(timeout=5)
        if message.get("fields"):
            return dict(message)


def test_a_member_of_another_organisation_is_refused_and_receives_nothing() -> None:
    # given: two organisations, each with a member and a campaign; one placement
    acme, rival = make_advertiser("Acme"), make_advertiser("Rival")
    alice, bob = _user("alice", acme), _user("bob", rival)
    placement = make_placement(sizes=["300x250"], floor=Decimal("10.00"))
    ours = make_campaign(acme, daily_budget=Decimal("1.00"))
    make_line_item(ours, "20.00")
    theirs = make_campaign(rival)
    publish_snapshot()
    as_alice, as_bob = _cookie(alice), _cookie(bob)

    async def scenario() -> dict[str, Any]:
        app = ServingApp.from_settings()
        alice_ws = _socket(f"/ws/live/campaign/{ours.pk}", ORIGIN, as_alice)
        bob_on_ours = _socket(f"/ws/live/campaign/{ours.pk}", ORIGIN, as_bob)
        bob_ws = _socket(f"/ws/live/campaign/{theirs.pk}", ORIGIN, as_bob)
        anonymous = _socket(f"/ws/live/campaign/{ours.pk}", ORIGIN)
        cross_site = _socket(
            f"/ws/live/campaign/{ours.pk}", (b"origin", b"http://evil.test"), as_alice
        )
        refused = {
            "bob on ours": (await bob_on_ours.connect())[0],
            "anonymous": (await anonymous.connect())[0],
            "cross-site": (await cross_site.connect())[0],
        }
        accepted = ((await alice_ws.connect())[0], (await bob_ws.connect())[0])
        try:
            # when: three wins for our campaign at 10.01 CPM (the floor + 0.01), then a tick
            statuses = await _ask(app, placement.key, ["300x250"], 3)
            for _ in range(100):  # the wins are charged by serving's next batch (ms)
                sent = await sync_to_async(publish_live)()
                alice_sees = await _next_figures(alice_ws)
                if alice_sees["fields"]["wins_today"] == "3":
                    break
                await asyncio.sleep(0.05)
            bob_sees = await _next_figures(bob_ws)
            # drain what bob got from earlier ticks: all of it his own campaign's
            bob_all = [bob_sees]
            while not await bob_ws.receive_nothing(timeout=0.3):
                bob_all.append(await bob_ws.receive_json_from())
        finally:
            await alice_ws.disconnect()
            await bob_ws.disconnect()
            await app.shutdown()
            await _close_thread_connections()
        return {"refused": refused, "accepted": accepted, "statuses": statuses,
                "sent": sent, "alice": alice_sees, "bob": bob_all}  # fmt: skip

    seen = asyncio.run(scenario())

    # then
    assert seen["refused"] == {"bob on ours": False, "anonymous": False, "cross-site": False}
    assert seen["accepted"] == (True, True)
    assert seen["statuses"] == [200, 200, 200]
    assert seen["sent"] == 2  # one message per watched campaign, whoever watches
    assert seen["alice"]["campaign"] == ours.pk
    fields = seen["alice"]["fields"]
    assert (fields["spend_today"], fields["budget"], fields["spend_share"]) == (
        "0.03", "1.00", "3.0%",
    )  # fmt: skip
    assert (fields["wins_today"], fields["pacing_rate"], fields["delivery"]) == (
        "3", "100%", "Delivering",
    )  # fmt: skip
    assert {m["campaign"] for m in seen["bob"]} == {theirs.pk}
    assert all(m["fields"]["spend_today"] == "0.00" for m in seen["bob"])


def test_ops_is_for_staff_and_shows_requests_per_second_and_fill_by_door() -> None:
    advertiser = make_advertiser("Acme")
    placement = make_placement(sizes=["300x250", "728x90"])
    make_line_item(make_campaign(advertiser), "4.00")  # 300x250 only: a 728x90 is no fill
    publish_snapshot()
    member = _cookie(_user("member", advertiser))
    staff = _cookie(_user("adops", is_staff=True))

    async def scenario() -> tuple[bool, bool, dict[str, str], dict[str, str]]:
        app = ServingApp.from_settings()
        member_ws = _socket("/ws/live/ops", ORIGIN, member)
        staff_ws = _socket("/ws/live/ops", ORIGIN, staff)
        member_ok = (await member_ws.connect())[0]
        staff_ok = (await staff_ws.connect())[0]
        try:
            await app.startup()
            await app.publish_metrics()
            await sync_to_async(publish_live)()
            before = (await _next_figures(staff_ws))["fields"]
            await _ask(app, placement.key, ["300x250"], 3)
            await _ask(app, placement.key, ["728x90"], 1)
            await asyncio.sleep(0.05)
            await app.publish_metrics()
            await sync_to_async(publish_live)()
            after = (await _next_figures(staff_ws))["fields"]
        finally:
            await staff_ws.disconnect()
            await app.shutdown()
            await _close_thread_connections()
        return member_ok, staff_ok, before, after

    member_ok, staff_ok, before, after = asyncio.run(scenario())

    assert (member_ok, staff_ok) == (False, True)
    assert (before["v1.rps"], before["v1.fill"], before["processes"]) == ("0.0", "\u2013", "1")
    assert float(after["v1.rps"]) > 0
    assert after["v1.fill"] == "75.0%"  # 3 of 4 answered with an ad
    assert after["vast.fill"] == "\u2013"  # an empty VAST is a 200: no fill figure
    assert after["snapshot.version"] != "\u2013"


def test_a_rate_is_the_difference_between_a_processs_last_two_publications() -> None:
    first = {"w1": {"published_at": 100.0, "requests": [["v1", 200, 10], ["v1", 204, 10]]}}
    later = {"w1": {"published_at": 105.0, "requests": [["v1", 200, 40], ["v1", 204, 20]]}}
    gone: dict[str, Any] = {}

    held = advance_samples({}, first)
    same = advance_samples(held, first)  # a tick before the process published again
    moved = advance_samples(same, later)

    assert door_rates(held) == {}
    assert same == held
    assert door_rates(moved) == {"v1": [8.0, 6.0, 2.0, 0.0]}  # 40 requests in 5 s
    assert advance_samples(moved, gone) == {}


def test_nothing_watched_sends_nothing() -> None:
    make_campaign()
    assert publish_live() == 0


def test_an_unknown_websocket_path_is_refused() -> None:
    staff = _cookie(_user("adops", is_staff=True))

    async def connect() -> bool:
        socket = _socket("/ws/live/nothing", ORIGIN, staff)
        connected = bool((await socket.connect())[0])
        await _close_thread_connections()
        return connected

    assert asyncio.run(connect()) is False


def test_a_member_removed_while_watching_is_disconnected_at_the_next_ping() -> None:
    acme = make_advertiser("Acme")
    alice = _user("alice", acme)
    campaign = make_campaign(acme)
    cookie = _cookie(alice)

    async def scenario() -> tuple[Any, Any]:
        socket = _socket(f"/ws/live/campaign/{campaign.pk}", ORIGIN, cookie)
        assert (await socket.connect())[0]
        await socket.send_json_to({"type": "ping"})
        while (answer := await socket.receive_json_from(timeout=5)).get("kind") != "pong":
            pass
        await sync_to_async(Membership.objects.filter(user=alice).delete)()
        await socket.send_json_to({"type": "ping"})
        closed = await socket.receive_output(timeout=5)
        await _close_thread_connections()
        return answer, closed

    answer, closed = asyncio.run(scenario())

    assert answer == {"kind": "pong"}
    assert closed == {"type": "websocket.close", "code": 4403}
