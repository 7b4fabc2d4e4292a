"""The serving hot path's lean Redis connection and the event sink on it, on the real Redis."""

import asyncio
from typing import Any

import hiredis
import pytest
import uvloop
from django.conf import settings
from redis import Redis

from serving.events import Event, EventSink, decode_events
from serving.wire import Endpoint, Lua, WireError, connect

PREFIX = settings.REDIS_KEY_PREFIX
ECHO_SUM = Lua("return tonumber(ARGV[1]) + tonumber(ARGV[2])")


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_kind(request: pytest.FixtureRequest) -> str:
    """Each test on both event loops: production servers run uvloop, whose transports are
    not asyncio's classes."""
    return str(request.param)


def run(coro: Any, loop_kind: str = "asyncio") -> Any:
    if loop_kind == "uvloop":
        return uvloop.run(coro)
    return asyncio.run(coro)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6380/4", Endpoint(port=6380, db=4)),
        ("redis://:s3cret@cache.internal", Endpoint(host="cache.internal", password="s3cret")),
        ("redis://app:pw%2F1@h:7000/0", Endpoint(host="h", port=7000, username="app",
                                                 password="pw/1")),
        ("rediss://h:6390/2", Endpoint(host="h", port=6390, db=2, tls=True)),
        ("unix:///run/redis.sock?db=9", Endpoint(path="/run/redis.sock", db=9)),
    ],
)  # fmt: skip
def test_urls_are_read_as_redis_py_reads_them(url: str, expected: Endpoint) -> None:
    assert Endpoint.from_url(url) == expected


def test_a_url_that_is_not_redis_is_refused() -> None:
    with pytest.raises(ValueError, match="not a Redis URL"):
        Endpoint.from_url("http://127.0.0.1:6379")


def test_a_batch_gets_its_replies_in_order_with_errors_in_place(
    redis_client: Redis, loop_kind: str
) -> None:
    key = f"{PREFIX}wire:counter"

    async def go() -> list[Any]:
        wire = await connect(Endpoint.from_url(settings.REDIS_URL))
        first = wire.send([("INCRBY", key, 5), ("HSET", f"{key}:h", "a", 1), ("LPUSH", key, "x")])
        second = wire.send([("HGETALL", f"{key}:h"), ("GET", f"{PREFIX}wire:none")])
        replies = [*await first, *await second]
        assert wire.transport is not None
        wire.transport.close()
        return replies

    incr, hset, wrong_type, hgetall, missing = run(go(), loop_kind)
    assert (incr, hset, hgetall, missing) == (5, 1, [b"a", b"1"], None)
    assert isinstance(wrong_type, hiredis.ReplyError)
    assert "WRONGTYPE" in str(wrong_type)
    assert redis_client.get(key) == b"5"  # the batch after the error still ran


def test_a_closed_connection_fails_its_batch_and_the_next_opens_a_new_one(
    redis_client: Redis, loop_kind: str
) -> None:
    async def go() -> None:
        wire = await connect(Endpoint.from_url(settings.REDIS_URL))
        pending = wire.send([("BLPOP", f"{PREFIX}wire:never", 5)])
        assert wire.transport is not None
        wire.transport.close()
        with pytest.raises(WireError):
            await pending
        with pytest.raises(WireError):
            await wire.send([("PING",)])

    run(go(), loop_kind)


def test_the_sink_writes_runs_scripts_and_reads_in_one_batch(
    redis_client: Redis, loop_kind: str
) -> None:
    stream = f"{PREFIX}wire:events"

    async def go() -> tuple[Any, Any, list[Any], int]:
        sink = EventSink(settings.REDIS_URL, stream)
        replies: list[Any] = []
        sink.emit([Event(t="req", ts=1, pl=7, d="r1")])
        sink.call("HINCRBY", f"{PREFIX}wire:h", "n", 3)
        sink.script(ECHO_SUM, (), (2, 40), replies.append)
        total = await sink.run_script(ECHO_SUM, (), (1, 1))
        read = await sink.fetch("HGETALL", f"{PREFIX}wire:h")
        await sink.close()
        return total, read, replies, sink.dropped

    total, read, replies, dropped = run(go(), loop_kind)
    assert (total, read, replies, dropped) == (2, [b"n", b"3"], [42], 0)
    entries: Any = redis_client.xrange(stream)
    (entry,) = entries
    assert decode_events(entry[1][b"v"]) == [Event(t="req", ts=1, pl=7, d="r1")]


def test_a_script_the_server_forgot_is_loaded_again_and_run_once(
    redis_client: Redis, loop_kind: str
) -> None:
    counter = f"{PREFIX}wire:once"
    bump = Lua("return redis.call('INCR', KEYS[1])")

    async def go() -> list[Any]:
        sink = EventSink(settings.REDIS_URL, f"{PREFIX}wire:events")
        first = await sink.run_script(bump, (counter,), ())
        redis_client.script_flush()  # what a failover or SCRIPT FLUSH does to the cache
        second = await sink.run_script(bump, (counter,), ())
        await sink.close()
        return [first, second]

    assert run(go(), loop_kind) == [1, 2]
    assert redis_client.get(counter) == b"2"


def test_the_sink_recovers_after_redis_drops_its_connection(
    redis_client: Redis, loop_kind: str
) -> None:
    key = f"{PREFIX}wire:after"

    async def go() -> tuple[Any, int]:
        sink = EventSink(settings.REDIS_URL, f"{PREFIX}wire:events")
        client_id = await sink.fetch("CLIENT", "ID")
        redis_client.client_kill_filter(_id=client_id)  # Redis drops the sink's connection
        await asyncio.sleep(0.05)
        sink.call("SET", key, "lost?")
        await sink.drain()  # this batch finds the connection gone
        value = await sink.fetch("INCR", key + ":n")  # and the next reconnects
        await sink.close()
        return value, sink.dropped

    value, dropped = run(go(), loop_kind)
    assert value == 1
    # the write that met the dropped connection is counted, or it made it through on a new
    # connection if the server's close had not reached the client yet
    assert dropped == 1 or redis_client.get(key) == b"lost?"


def test_a_flush_scheduled_for_now_on_uvloop_does_not_break_the_next_op(
    redis_client: Redis,
) -> None:
    # uvloop's call_at hands back a plain Handle (no `when()`) when the time has come, which
    # a late 2 ms delay or a zero one is: the next op then met an AttributeError (a 500).
    async def go() -> list[Any]:
        sink = EventSink(settings.REDIS_URL, f"{PREFIX}wire:events", flush_delay=0.0)
        replies = await asyncio.gather(*(sink.fetch("PING") for _ in range(3)))
        await sink.close()
        return list(replies)

    assert run(go(), "uvloop") == [b"PONG", b"PONG", b"PONG"]
