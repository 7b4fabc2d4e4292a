"""One error shape for the whole API.

    {"error": {"status": 400, "code": "invalid", "message": "...",
               "fields": [{"path": "frequency_caps[0]", "message": "..."}]}}

`fields` lists every invalid input by its path (dots for objects, [n] for list items).
"""

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from campaigns.services import StaleVersion


def _flatten(detail: Any, path: str = "") -> list[dict[str, str]]:
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            name = "" if key in ("non_field_errors", "__all__") else str(key)
            out += _flatten(value, f"{path}.{name}" if path and name else path or name)
        return out
    if isinstance(detail, list):
        if all(not isinstance(d, dict | list) for d in detail):
            return [{"path": path, "message": str(d)} for d in detail]
        out = []
        for n, value in enumerate(detail):
            out += _flatten(value, f"{path}[{n}]")
        return out
    return [{"path": path, "message": str(detail)}]


def error_body(status_code: int, code: str, message: str, fields: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status": status_code, "code": code, "message": message}
    if fields is not None:
        body["fields"] = _flatten(fields)
    return {"error": body}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, StaleVersion):
        return Response(
            error_body(
                412, "precondition_failed",
                f"The object changed since you read it; it is now at version {exc.current}.",
            ),
            status=status.HTTP_412_PRECONDITION_FAILED,
            headers={"ETag": f'"v{exc.current}"'},
        )  # fmt: skip
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"": exc.messages}
        exc = exceptions.ValidationError(detail)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = error_body(
            status.HTTP_400_BAD_REQUEST, "invalid", "The request is not valid.", exc.detail
        )
    elif isinstance(exc, exceptions.APIException):
        response.data = error_body(response.status_code, str(exc.get_codes()), str(exc.detail))
    return response
