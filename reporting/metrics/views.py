"""`/metrics` (Prometheus), `/healthz` (alive) and `/readyz` (dependencies) of the Django app.

`/metrics` answers loopback callers, or anyone presenting `Authorization: Bearer
<METRICS_TOKEN>` when that setting is set (docs/deploy.md "Operations"). `/readyz` answers
503 when a required check fails (`READYZ_REQUIRED`, by default the database, Redis and a
published snapshot: what a web process needs to answer); the other checks (beat alive,
ingestion keeping up) are reported in the body either way, for a worker's or beat's probe
to require instead (`?require=beat,ingest`).
"""

import hmac
import ipaddress
import time
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from reporting.metrics.collect import PACING_TASK, Figures, collect
from reporting.metrics.exposition import render

CHECKS = ("database", "redis", "snapshot", "beat", "ingest")


def _allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    given = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return True
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        return JsonResponse(
            {"error": "forbidden", "detail": "metrics answer loopback or the METRICS_TOKEN"},
            status=403,
        )
    return HttpResponse(render(), content_type=CONTENT_TYPE_LATEST)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up and answering (no dependency checked)."""
    return JsonResponse({"status": "alive"})


def _checks() -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        results["database"] = {"ok": True}
    except Exception as exc:
        results["database"] = {"ok": False, "detail": str(exc)[:200]}
    figures: Figures | None = None
    try:
        figures = collect()
        results["redis"] = {"ok": True}
    except Exception as exc:
        results["redis"] = {"ok": False, "detail": str(exc)[:200]}
    if figures is None:
        for name in ("snapshot", "beat", "ingest"):
            results[name] = {"ok": False, "detail": "Redis unavailable"}
        return results
    results["snapshot"] = {
        "ok": figures.snapshot_version > 0,
        "version": figures.snapshot_version,
    }
    pacing = figures.tasks.get(PACING_TASK)
    ago = figures.now - pacing.last_end if pacing and pacing.last_end else None
    results["beat"] = {
        "ok": ago is not None and ago <= settings.READYZ_BEAT_STALE_SECONDS,
        "pacing_seconds_ago": round(ago, 1) if ago is not None else None,
    }
    lag = figures.backlog.get("lag", 0.0)
    checked = figures.backlog.get("checked_at", 0.0)
    checked_ago = figures.now - checked if checked else None
    results["ingest"] = {
        "ok": lag <= settings.READYZ_INGEST_LAG_LIMIT
        and checked_ago is not None
        and checked_ago <= settings.READYZ_BEAT_STALE_SECONDS,
        "lag_entries": int(lag),
        "checked_seconds_ago": round(checked_ago, 1) if checked_ago is not None else None,
    }
    return results


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    started = time.monotonic()
    asked = request.GET.get("require", "")
    required = list(settings.READYZ_REQUIRED)
    for name in filter(None, (part.strip() for part in asked.split(","))):
        if name not in CHECKS:
            return JsonResponse(
                {"error": "bad_request", "detail": f"unknown check {name!r}; one of {CHECKS}"},
                status=400,
            )
        required.append(name)
    results = _checks()
    failing = sorted({name for name in required if not results.get(name, {}).get("ok")})
    return JsonResponse(
        {
            "status": "ready" if not failing else "not_ready",
            "failing": failing,
            "required": sorted(set(required)),
            "checks": results,
            "ms": round((time.monotonic() - started) * 1000, 1),
        },
        status=200 if not failing else 503,
    )
