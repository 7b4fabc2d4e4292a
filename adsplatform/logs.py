"""Logs: plain lines for a person at a terminal, or JSON lines (structlog) for a collector.

`LOG_FORMAT=json` turns every log record of Django, Celery and serving into one JSON object
per line: time (UTC, ISO 8601), level, logger, event (the message) and any bound context,
the request id of the Django request being answered (`RequestIdMiddleware`) and, on the
serving access log, the door, status, milliseconds, request id and decision id. The default
(`text`) keeps `bin/run`'s terminal readable.
"""

import contextlib
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse

# A caller's request id is kept when it is short and plain; otherwise one is made.
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")

SHARED_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.ExtraAdder(),
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def formatters() -> dict[str, dict[str, Any]]:
    """The `LOGGING` formatters: `plain` and `json`."""
    return {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": structlog.stdlib.ProcessorFormatter,
            "foreign_pre_chain": SHARED_PROCESSORS,
            "processors": [
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
        },
    }


def request_id_of(value: str | None) -> str:
    if value and _REQUEST_ID_RE.match(value):
        return value
    return secrets.token_hex(8)


def _bind(request: HttpRequest) -> str:
    """The request's id, bound to its log context until the next request in the same context
    clears it: not reset on the way out, because Django logs a 4xx/5xx response
    (`django.request`) after the middleware chain has returned."""
    rid = request_id_of(request.headers.get("X-Request-ID"))
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=rid)
    return rid


class RequestIdMiddleware:
    """Binds the request id (the caller's `X-Request-ID` when plain, else a new one) to every
    log line of the request, and returns it as `X-Request-ID`."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        rid = _bind(request)
        response: HttpResponse = self.get_response(request)
        response.headers.setdefault("X-Request-ID", rid)
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        rid = _bind(request)
        get: Callable[[HttpRequest], Awaitable[HttpResponse]] = self.get_response
        response = await get(request)
        with contextlib.suppress(AttributeError):
            response.headers.setdefault("X-Request-ID", rid)
        return response
