"""The server-to-server conversion postback: `POST /api/v1/conversions/postback/`.

Signed per advertiser with a `ConversionKey` (docs/conversions.md): `X-Conversion-Key`
names the key, and either `X-Conversion-Timestamp` + `X-Conversion-Signature: sha256=<hex
HMAC-SHA256(secret, "<timestamp>.<body>")>` sign the exact body (preferred: the secret never
travels), or `Authorization: Bearer <secret>` carries the key itself. The conversion is
checked like the pixel's (`serving.conversions`) and appended to the event stream; it is
attributed at ingestion, so the answer is a 202.
"""

import hashlib
import hmac
import json
import time
from datetime import timedelta
from typing import Any, cast

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db.models import Q
from django.utils import timezone
from django_redis import get_redis_connection
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from compliance.policy import PrivacySignals, evaluate
from compliance.pseudonym import Pseudonymiser
from reporting.conversions.models import ConversionKey
from serving.conversions import POSTBACK, ClickIds, FieldError, conversion_event, parse_conversion
from serving.events import encode_events
from serving.keys import RedisKeys

# A signed request older (or further ahead) than this is refused: a captured request cannot
# be replayed later (and a replay inside it is an order id counted once).
SIGNATURE_TOLERANCE_SECONDS = 300
CONSENT_FIELDS = frozenset({"gdpr", "gdpr_consent", "us_privacy", "gpp"})
KNOWN_FIELDS = frozenset(POSTBACK.values()) | CONSENT_FIELDS


def _refuse(message: str) -> exceptions.AuthenticationFailed:
    return exceptions.AuthenticationFailed(message)


class ConversionKeyAuthentication(BaseAuthentication):
    """The advertiser's key, by HMAC signature or bearer secret; 401 with the reason."""

    def authenticate(self, request: Request) -> tuple[Any, ConversionKey]:
        key_id = request.headers.get("X-Conversion-Key", "").strip()
        if not key_id:
            raise _refuse("X-Conversion-Key is missing: name your conversion key.")
        key = (
            ConversionKey.objects.active()
            .select_related("advertiser")
            .filter(key_id=key_id)
            .first()
        )
        if key is None:
            raise _refuse("The conversion key is unknown or revoked.")
        signature = request.headers.get("X-Conversion-Signature", "").strip()
        bearer = request.headers.get("Authorization", "")
        if signature:
            self._check_signature(request, key, signature)
        elif bearer.lower().startswith("bearer "):
            if not hmac.compare_digest(bearer[7:].strip().encode(), key.secret.encode()):
                raise _refuse("The bearer secret does not match the conversion key.")
        else:
            raise _refuse("Sign the body (X-Conversion-Signature) or send the secret as Bearer.")
        ConversionKey.objects.filter(pk=key.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=timezone.now() - _MINUTE)
        ).update(last_used_at=timezone.now())
        return AnonymousUser(), key

    def _check_signature(self, request: Request, key: ConversionKey, signature: str) -> None:
        stamp = request.headers.get("X-Conversion-Timestamp", "").strip()
        if not stamp.isdigit():
            raise _refuse("X-Conversion-Timestamp must be the signing time in epoch seconds.")
        if abs(time.time() - int(stamp)) > SIGNATURE_TOLERANCE_SECONDS:
            raise _refuse(
                f"X-Conversion-Timestamp is more than {SIGNATURE_TOLERANCE_SECONDS} s from our "
                "clock: sign the request again."
            )
        scheme, _, given = signature.partition("=")
        if scheme != "sha256" or not given:
            raise _refuse("X-Conversion-Signature must be sha256=<hex digest>.")
        body = request._request.body  # the exact bytes that were signed (read, not parsed)
        expected = hmac.new(key.secret.encode(), stamp.encode() + b"." + body, hashlib.sha256)
        if not hmac.compare_digest(given.strip().lower(), expected.hexdigest()):
            raise _refuse("X-Conversion-Signature does not match the body and timestamp.")

    def authenticate_header(self, request: Request) -> str:
        return 'Signature realm="conversions", headers="X-Conversion-Key"'


_MINUTE = timedelta(minutes=1)


def _invalid(field: str, message: str) -> exceptions.ValidationError:
    return exceptions.ValidationError({field: [message]})


def _body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _invalid("", f"The body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _invalid("", "The body must be a JSON object.")
    unknown = sorted(set(body) - KNOWN_FIELDS)
    if unknown:
        raise _invalid(unknown[0], "Not a conversion field.")
    return body


def _privacy(body: dict[str, Any]) -> PrivacySignals:
    gdpr = body.get("gdpr")
    if gdpr not in (None, 0, 1):
        raise _invalid("gdpr", "Must be 0 or 1.")
    texts = {}
    for name in ("gdpr_consent", "us_privacy", "gpp"):
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise _invalid(name, "Must be a string.")
        texts[name] = value or None
    return PrivacySignals(
        gdpr=gdpr, tc_string=texts["gdpr_consent"], us_privacy=texts["us_privacy"],
        gpp=texts["gpp"],
    )  # fmt: skip


class ConversionPostbackView(APIView):
    """Record one conversion for the key's advertiser (attributed at ingestion)."""

    authentication_classes = [ConversionKeyAuthentication]
    permission_classes = [AllowAny]

    @extend_schema(
        request={"application/json": dict},
        responses={202: OpenApiResponse(description="Accepted; attributed at ingestion.")},
        summary="Report a conversion (signed per advertiser)",
    )
    def post(self, request: Request) -> Response:
        key = cast(ConversionKey, request.auth)
        body = _body(request._request.body)
        advertiser_id = key.advertiser_id
        try:
            conversion = parse_conversion(
                body.get, POSTBACK, ClickIds(settings.SERVING_SIGNING_KEY), advertiser_id
            )
        except FieldError as exc:
            raise _invalid(exc.field, exc.message[:1].upper() + exc.message[1:] + ".") from None
        permissions = evaluate(_privacy(body), settings.GVL_VENDOR_ID)
        if not permissions.measure:
            # The sender's own signals deny measurement (TCF purpose 7): nothing is kept.
            return Response(
                {"status": "not_recorded", "reason": "no_measurement_consent"},
                status=status.HTTP_202_ACCEPTED,
            )
        pseudonym = ""
        if conversion.user_id and permissions.use_ids:
            pseudonym = Pseudonymiser.from_settings().pseudonym(
                conversion.user_id, conversion.ts_ms / 1000
            )
        event = conversion_event(conversion, advertiser_id, pseudonym, "postback")
        stream = RedisKeys(settings.REDIS_KEY_PREFIX).events
        get_redis_connection("default").xadd(stream, {"v": encode_events([event])})
        return Response(
            {"status": "accepted", "attribution": "pending", "order_id": conversion.order_id},
            status=status.HTTP_202_ACCEPTED,
        )


class ConversionKeySchema(OpenApiAuthenticationExtension):
    """How the API schema describes the postback's key (docs/conversions.md)."""

    target_class = ConversionKeyAuthentication
    name = "conversionKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey", "in": "header", "name": "X-Conversion-Key",
            "description": "The key's id; with X-Signature (HMAC-SHA256) or its secret as a "
            "bearer token.",
        }  # fmt: skip
