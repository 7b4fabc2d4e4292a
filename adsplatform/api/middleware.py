"""Refuse NUL characters in API input before they reach the database.

Postgres cannot store NUL in text and raises on a query that contains one; anything that
takes text (filters, search, lookups by name, JSON bodies) would answer 500. A clear 400 here
covers them all at once.
"""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from adsplatform.api.errors import error_body


class RejectNullCharactersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/") and self._has_nul(request):
            return JsonResponse(
                error_body(400, "invalid", "The request contains a NUL character (\\u0000)."),
                status=400,
            )
        return self.get_response(request)

    @staticmethod
    def _has_nul(request: HttpRequest) -> bool:
        if any("\x00" in key or "\x00" in value for key, value in request.GET.items()):
            return True
        if request.content_type == "application/json":
            # JSON spells NUL \u0000 (a raw NUL byte is not valid JSON at all).
            return b"\\u0000" in request.body or b"\x00" in request.body
        return False
