"""One lean Redis connection for the serving hot path's batches.

A serving batch holds a few commands per ad request (the request's stream entry, a win's
charge, frequency counters, rate-limit syncs). Through redis-py's asyncio pipeline each
command cost about 15 µs of Python on its way out and back (packing, a response callback,
retry and timeout wrappers, per-command parsing calls), a fifth of a whole decision. Here a
batch is packed by hiredis in C and written in one call, and replies are parsed by
`hiredis.Reader` as bytes arrive and handed back in order: a few µs per command.

Replies are raw RESP2 as hiredis gives them: bytes, ints, lists (`HGETALL` is a flat list),
`None`; an error reply is a `hiredis.ReplyError` instance in its place, not raised. Batches
may be pipelined: several in flight on the one connection, answered in order.
"""

import asyncio
import hashlib
import ssl
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis

Command = Sequence[Any]


class WireError(ConnectionError):
    """The connection failed or closed before a batch was answered."""


@dataclass(frozen=True, slots=True)
class Lua:
    """A Lua script run by its SHA1 (EVALSHA); loaded once per connection."""

    body: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.body.encode()).hexdigest())  # noqa: S324 - Redis names scripts by SHA1


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str = "127.0.0.1"
    port: int = 6379
    path: str = ""  # a unix socket
    db: int = 0
    username: str = ""
    password: str = ""
    tls: bool = False

    @classmethod
    def from_url(cls, url: str) -> "Endpoint":
        """redis://[user:password@]host[:port][/db], rediss:// (TLS) or
        unix://path[?db=N&password=...], as redis-py reads them."""
        parts = urlsplit(url)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        username = unquote(parts.username or query.get("username", ""))
        password = unquote(parts.password or query.get("password", ""))
        if parts.scheme == "unix":
            return cls(path=unquote(parts.path), db=int(query.get("db", "0")),
                       username=username, password=password)  # fmt: skip
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(f"not a Redis URL: {parts.scheme}://")
        path_db = parts.path.lstrip("/")
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 6379,
            db=int(path_db or query.get("db", "0")),
            username=username,
            password=password,
            tls=parts.scheme == "rediss",
        )


class _Batch:
    __slots__ = ("count", "future", "replies", "sent_at")

    def __init__(self, future: asyncio.Future[list[Any]], count: int, sent_at: float) -> None:
        self.future, self.count, self.sent_at = future, count, sent_at
        self.replies: list[Any] = []


class Wire(asyncio.Protocol):
    """The protocol of one connection: batches out, replies back in order."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._reader = hiredis.Reader()
        self._waiting: deque[_Batch] = deque()
        self.loaded: set[str] = set()  # SHAs of scripts this connection has loaded
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not a subclass of asyncio's, hence no isinstance).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        waiting = self._waiting
        while True:
            try:
                reply = self._reader.gets()
            except hiredis.ProtocolError as exc:
                self._fail(WireError(f"Redis protocol error: {exc}"))
                if self.transport is not None:
                    self.transport.close()
                return
            if reply is False:
                return
            if not waiting:  # a reply nobody asked for: the stream is out of step
                self._fail(WireError("unexpected reply from Redis"))
                if self.transport is not None:
                    self.transport.close()
                return
            batch = waiting[0]
            batch.replies.append(reply)
            if len(batch.replies) == batch.count:
                waiting.popleft()
                if not batch.future.done():
                    batch.future.set_result(batch.replies)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(WireError(f"Redis connection lost: {exc}" if exc else "Redis closed"))

    def _fail(self, exc: Exception) -> None:
        self.closed = True
        while self._waiting:
            batch = self._waiting.popleft()
            if not batch.future.done():
                batch.future.set_exception(exc)

    def send(self, commands: Sequence[Command]) -> asyncio.Future[list[Any]]:
        """Write a batch; the future gets one reply per command, in order."""
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        if self.closed or self.transport is None or self.transport.is_closing():
            future.set_exception(WireError("Redis connection closed"))
            return future
        if not commands:
            future.set_result([])
            return future
        self.transport.write(b"".join([hiredis.pack_command(tuple(c)) for c in commands]))
        self._waiting.append(_Batch(future, len(commands), time.monotonic()))
        return future

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def oldest_wait(self, now: float) -> float:
        """How long the oldest unanswered batch has waited (0 when none)."""
        return now - self._waiting[0].sent_at if self._waiting else 0.0

    def abort_if_stalled(self, now: float, timeout: float) -> bool:
        """Fail every waiting batch and drop the connection when the oldest has waited over
        `timeout` (a hung Redis: the socket stays open, nothing answers). Checked by a
        periodic sweep (`EventSink`), so no batch pays for a timer of its own."""
        if not self._waiting or now - self._waiting[0].sent_at <= timeout:
            return False
        self._fail(WireError(f"Redis did not answer within {timeout:g} s"))
        if self.transport is not None:
            self.transport.abort()
        return True


async def connect(endpoint: Endpoint, timeout: float = 5.0) -> Wire:
    """A connection, authenticated and on its database."""
    loop = asyncio.get_running_loop()
    if endpoint.path:
        make = loop.create_unix_connection(Wire, endpoint.path)
    else:
        context = ssl.create_default_context() if endpoint.tls else None
        make = loop.create_connection(Wire, endpoint.host, endpoint.port, ssl=context)
    _, wire = await asyncio.wait_for(make, timeout)
    hello: list[Command] = []
    if endpoint.password:
        auth = (endpoint.username, endpoint.password) if endpoint.username else (endpoint.password,)
        hello.append(("AUTH", *auth))
    if endpoint.db:
        hello.append(("SELECT", endpoint.db))
    if hello:
        try:
            replies = await asyncio.wait_for(wire.send(hello), timeout)
        except BaseException:  # a hung server: do not leave the socket behind
            if wire.transport is not None:
                wire.transport.abort()
            raise
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                if wire.transport is not None:
                    wire.transport.close()
                raise WireError(f"Redis refused the connection: {reply}")
    return wire
