"""Idempotent creates (`Idempotency-Key`) and optimistic concurrency (ETag / If-Match)."""

import hashlib
import json
from typing import Any

from django.conf import settings
from django_redis import get_redis_connection
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from adsplatform.api.errors import error_body

IDEMPOTENCY_TTL = 24 * 3600
PENDING = b"pending"


def etag_for(version: int) -> str:
    return f'"v{version}"'


def expected_version(request: Request) -> int | None:
    """The version an If-Match header names; None when there is none or it is `*`."""
    header = request.headers.get("If-Match", "").strip()
    if not header or header == "*":
        return None
    tag = header.removeprefix("W/").strip('"')
    if not tag.startswith("v") or not tag[1:].isdigit():
        return -1  # matches nothing: answered with 412
    return int(tag[1:])


class IdempotentCreateMixin:
    """A POST retried with the same Idempotency-Key makes one object and gets the same answer."""

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = request.headers.get("Idempotency-Key")
        if not key:
            return super().create(request, *args, **kwargs)  # type: ignore[misc]
        if len(key) > 200:
            return Response(
                error_body(400, "invalid", "The Idempotency-Key is longer than 200 characters."),
                status=status.HTTP_400_BAD_REQUEST,
            )
        client = get_redis_connection("default")
        user = request.user.pk if request.user.is_authenticated else "anon"
        slot = f"{settings.REDIS_KEY_PREFIX}idem:{user}:{request.path}:{key}"
        fingerprint = hashlib.sha256(request.body).hexdigest()
        if not client.set(slot, PENDING, nx=True, ex=IDEMPOTENCY_TTL):
            return self._replay(client.get(slot), fingerprint)
        try:
            response: Response = super().create(request, *args, **kwargs)  # type: ignore[misc]
        except Exception:
            client.delete(slot)  # a failed attempt may be retried with the same key
            raise
        stored = {"fingerprint": fingerprint, "status": response.status_code,
                  "data": response.data}  # fmt: skip
        client.set(slot, json.dumps(stored, default=str), ex=IDEMPOTENCY_TTL)
        return response

    def _replay(self, raw: bytes | None, fingerprint: str) -> Response:
        if raw is None or raw == PENDING:
            return Response(
                error_body(409, "conflict", "A request with this Idempotency-Key is in progress."),
                status=status.HTTP_409_CONFLICT,
            )
        stored = json.loads(raw)
        if stored["fingerprint"] != fingerprint:
            return Response(
                error_body(
                    422, "idempotency_key_reused",
                    "This Idempotency-Key was used with a different request body.",
                ),
                status=status.HTTP_422_UNPROCESSABLE_ENTITY,
            )  # fmt: skip
        return Response(stored["data"], status=stored["status"],
                        headers={"Idempotent-Replayed": "true"})  # fmt: skip


class ETagMixin:
    """Every object answer carries its ETag; a PATCH/PUT with a stale If-Match gets 412."""

    def finalize_response(
        self, request: Request, response: Response, *args: Any, **kwargs: Any
    ) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
        data = getattr(response, "data", None)
        if isinstance(data, dict) and isinstance(data.get("version"), int):
            response["ETag"] = etag_for(data["version"])
        return response
