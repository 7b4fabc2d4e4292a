"""The ASGI plumbing the serving doors share: request headers, query and body, responses."""

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from typing import Any
from urllib.parse import parse_qs

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Header = tuple[bytes, bytes]

MAX_BODY = 256 * 1024
GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
JSON = (b"content-type", b"application/json")
XML = (b"content-type", b"application/xml")
NO_STORE = (b"cache-control", b"no-store")


class HttpError(Exception):
    def __init__(
        self, status: int, error: str, detail: str = "", headers: Sequence[Header] = ()
    ) -> None:
        super().__init__(detail or error)
        self.status, self.error, self.detail = status, error, detail
        self.headers = list(headers)


def query_params(scope: Scope) -> dict[str, str]:
    raw = scope.get("query_string") or b""
    if not raw:
        return {}
    return {k: v[0] for k, v in parse_qs(raw.decode("latin-1")).items()}


def int_param(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 6:
        raise ValueError(f"`{name}` must be a whole number, got {value!r}")
    return int(value)


def all_headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


class BodyReads:
    """Body reads with a time limit, without a timer per request.

    A client that declares a Content-Length and sends less would hold its request (and its
    connection) forever. A timer per read costs about 13 µs on uvloop (a libuv timer made and
    cancelled); instead each read notes its task and start in a dict, and one sweep a
    second (`watch`) cancels those past the limit, which then answer 408 and close. So a
    stalled read ends between `limit` and `limit` + one sweep interval.
    """

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self._started: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()

    async def read(self, receive: Receive) -> bytes:
        task = asyncio.current_task()
        if task is None or self.limit <= 0:
            return await _read_all(receive)
        self._started[task] = time.monotonic()
        try:
            return await _read_all(receive)
        except asyncio.CancelledError:
            if task not in self._expired:
                raise
            self._expired.discard(task)
            task.uncancel()
            # Part of a body may still be on its way: the connection cannot be reused.
            raise HttpError(
                408,
                "body_timeout",
                f"the body did not arrive within {self.limit:g} s",
                headers=[(b"connection", b"close")],
            ) from None
        finally:
            self._started.pop(task, None)

    def sweep(self, now: float) -> int:
        """Cancel the reads started before `now - limit`; how many."""
        horizon = now - self.limit
        late = [task for task, started in self._started.items() if started < horizon]
        for task in late:
            del self._started[task]
            self._expired.add(task)
            task.cancel()
        return len(late)

    async def watch(self) -> None:
        interval = max(0.05, min(1.0, self.limit / 4))
        while True:
            await asyncio.sleep(interval)
            self.sweep(time.monotonic())


async def read_body(receive: Receive) -> bytes:
    """The whole body, without a time limit (`BodyReads.read` has one)."""
    return await _read_all(receive)


async def _read_all(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HttpError(400, "client_disconnected", "the client left before its body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise HttpError(413, "body_too_large", f"the body is over {MAX_BODY} bytes")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def respond(
    send: Send,
    status: int,
    body: bytes,
    request_id: str,
    headers: list[tuple[bytes, bytes]],
) -> None:
    all_headers = [*headers, (b"x-request-id", request_id.encode())]
    if status != 204:
        all_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body if status != 204 else b""})
