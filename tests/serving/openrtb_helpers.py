"""Shared by the OpenRTB tests: request bodies, their mapped context, their errors, and
the outbound request built from a context."""

import copy
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from compliance.policy import BuyerPermission
from serving.context import AdContext, Imp
from serving.openrtb import OpenRtbError, build_outbound_request, decode_bid_request, to_context

FX = {"USD": Decimal(1), "EUR": Decimal("1.1"), "GBP": Decimal("1.25")}
BANNER_IMP = {"id": "1", "tagid": "pk-1", "banner": {"w": 300, "h": 250}}


def request_body(**fields: Any) -> bytes:
    request: dict[str, Any] = {"id": "req-1", "imp": [copy.deepcopy(BANNER_IMP)]}
    request.update(fields)
    return msgspec.json.encode(request)


def context_of(body: bytes, **kwargs: Any) -> AdContext:
    options: dict[str, Any] = {
        "request_id": "our-1",
        "now": 1_700_000_000.0,
        "currency": "USD",
        "fx": FX,
        "sec_gpc": None,
    }
    options.update(kwargs)
    return to_context(decode_bid_request(body), **options)


def error_of(body: bytes, **kwargs: Any) -> OpenRtbError:
    with pytest.raises(OpenRtbError) as caught:
        context_of(body, **kwargs)
    return caught.value


def outbound_of(
    ctx: AdContext,
    *,
    send_ids: bool = True,
    precise: bool = True,
    imps: list[Imp] | None = None,
) -> dict[str, Any]:
    raw = build_outbound_request(
        ctx,
        imps=ctx.imps if imps is None else imps,
        permission=BuyerPermission(call=True, send_ids=send_ids, send_precise_geo=precise),
        tmax_ms=180,
        currency="USD",
        request_id="out-1",
    )
    decoded: dict[str, Any] = msgspec.json.decode(raw)
    return decoded
