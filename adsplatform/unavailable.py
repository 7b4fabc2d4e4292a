"""A clean 503 when the database is down: a page for the dashboard, the JSON error shape for
the API, never a traceback (DEBUG or not). Serving never touches the database and is not
affected (tests/faults/test_database_down.py)."""

from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader

from adsplatform.api.errors import error_body

RETRY_AFTER_SECONDS = "30"
# Errors that mean "cannot reach the database", not "this query is wrong".
UNREACHABLE = (OperationalError, InterfaceError)


class DatabaseUnavailableMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, UNREACHABLE) or not _is_connection_failure(exception):
            return None
        response: HttpResponse
        if request.path.startswith("/api/"):
            response = JsonResponse(
                error_body(503, "unavailable", "The database is unavailable; retry shortly."),
                status=503,
            )
        else:
            body = loader.render_to_string("503.html")
            response = HttpResponse(body, status=503)
        response["Retry-After"] = RETRY_AFTER_SECONDS
        return response


def _is_connection_failure(exception: Exception) -> bool:
    # SQLite's "database is locked" and Postgres' "connection refused", "server closed the
    # connection", "too many clients" all mean unavailable; a constraint or syntax error is
    # not an OperationalError in the first place (IntegrityError, ProgrammingError).
    return "no such table" not in str(exception)
