"""Bad bytes and slow bodies against the real ASGI app: a 400 or 408 naming the problem."""

import asyncio
import dataclasses
import socket
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from serving.app import ServingApp
from tests.faults.services import free_port, serving_granian
from tests.serving.test_app import config, placement_key

pytestmark = pytest.mark.django_db

__all__ = ["placement_key"]


async def call(app: ServingApp, path: str, messages: list[Any]) -> dict[str, Any]:
    """One raw ASGI request; after `messages` the client sends nothing more (receive hangs)."""
    queue = list(messages)
    sent: list[dict[str, Any]] = []

    async def receive() -> Any:
        if queue:
            return queue.pop(0)
        await asyncio.Event().wait()  # a client that declared more body than it sends
        raise AssertionError("unreachable")

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http", "method": "POST", "path": path, "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"200")],
    }  # fmt: skip
    await app(scope, receive, send)
    start, body = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    return {"status": start["status"], "headers": dict(start["headers"]), "body": body}


def run_app(scenario: Any, **overrides: Any) -> Any:
    async def go() -> Any:
        app = ServingApp(dataclasses.replace(config(), **overrides))
        await app.startup()
        try:
            return await scenario(app)
        finally:
            await app.shutdown()

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/ad", b'{"placement": "%s", "slots": [{"id": "a\xff", "sizes": ["300x250"]}]}'),
        ("/v1/ad", b'{"placement": "%s\xc3", "slots": [{"id": "a", "sizes": ["300x250"]}]}'),
        ("/openrtb2/auction", b'{"id": "r\xed\xa0\x80", "imp": [{"id": "1", "banner": {}}]}'),
    ],
)
def test_invalid_utf8_inside_a_json_string_is_a_400(
    placement_key: str, path: str, body: bytes
) -> None:
    raw = body.replace(b"%s", placement_key.encode()) if b"%s" in body else body

    async def scenario(app: ServingApp) -> dict[str, Any]:
        return await call(app, path, [{"type": "http.request", "body": raw}])

    answer = run_app(scenario)
    assert answer["status"] == 400
    error = msgspec.json.decode(answer["body"])
    assert error["error"] == "malformed_json"
    assert error["detail"].startswith("a JSON string is not valid UTF-8 (byte 0x")


def test_a_declared_body_that_never_arrives_is_a_408_that_closes(placement_key: str) -> None:
    async def scenario(app: ServingApp) -> tuple[dict[str, Any], float]:
        started = time.monotonic()
        part = {"type": "http.request", "body": b'{"placement": ', "more_body": True}
        answer = await asyncio.wait_for(call(app, "/v1/ad", [part]), timeout=5)
        return answer, time.monotonic() - started

    answer, took = run_app(scenario, body_timeout=0.3)
    assert answer["status"] == 408
    assert answer["headers"][b"connection"] == b"close"
    assert msgspec.json.decode(answer["body"])["error"] == "body_timeout"
    assert 0.3 <= took < 1.0  # the limit plus at most one sweep (a quarter of it)


def test_a_body_that_arrives_in_time_is_served(placement_key: str) -> None:
    body = b'{"placement": "%s", "slots": [{"id": "a", "sizes": ["300x250"]}]}' % (
        placement_key.encode()
    )

    async def scenario(app: ServingApp) -> int:
        parts = [
            {"type": "http.request", "body": body[:10], "more_body": True},
            {"type": "http.request", "body": body[10:]},
        ]
        return int((await call(app, "/v1/ad", parts))["status"])

    assert run_app(scenario, body_timeout=0.3) == 200


def test_a_slow_body_through_a_real_granian_gets_a_408_and_the_connection_closes(
    tmp_path: Path,
) -> None:
    # No Redis behind it: the body is read before anything else.
    env = {"FAULT_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "FAULT_BODY_TIMEOUT": "0.5"}
    with (
        serving_granian(tmp_path / "granian.log", env) as port,
        socket.create_connection(("127.0.0.1", port), timeout=5) as sock,
    ):
        started = time.monotonic()
        sock.sendall(
            b"POST /v1/ad HTTP/1.1\r\nHost: ads.test\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"placement": '
        )
        answer = b""
        while chunk := sock.recv(4096):  # until the server closes (or 5 s: a failure)
            answer += chunk
        took = time.monotonic() - started

    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in head.lower()
    assert msgspec.json.decode(body)["error"] == "body_timeout"
    assert 0.5 <= took < 2.0
