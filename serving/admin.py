import logging
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django_redis import get_redis_connection
from redis.exceptions import RedisError

from campaigns.snapshot import request_snapshot_publish
from compliance.gvl_store import current_gvl, vendor_summary
from serving.buyers.counters import LATENCY_COUNT, LATENCY_SUM, parse_buyer_stats
from serving.buyers.outcomes import REQUEST
from serving.keys import RedisKeys, day_of
from serving.models import Buyer

log = logging.getLogger(__name__)

# The counters worth a glance in the list; the change page shows them all.
SUMMARY = (REQUEST, "bid", "no_bid", "timeout", "error")


def todays_buyer_stats() -> dict[int, dict[str, int]] | None:
    """Today's (UTC) outcome counters of every buyer, or None when Redis cannot be read."""
    key = RedisKeys(settings.REDIS_KEY_PREFIX).buyer_stats(day_of(time.time()))
    try:
        raw = get_redis_connection("default").hgetall(key)
    except (RedisError, OSError) as exc:
        log.warning("buyer stats unavailable: %s", exc)
        return None
    return parse_buyer_stats(raw)


def _mean_latency(counters: dict[str, int]) -> str:
    count = counters.get(LATENCY_COUNT, 0)
    return f"{counters.get(LATENCY_SUM, 0) / count:.0f} ms" if count else "-"


def _summary(counters: dict[str, int] | None) -> str:
    if counters is None:
        return "unavailable"
    parts = [f"{reason} {counters[reason]}" for reason in SUMMARY if counters.get(reason)]
    if counters.get(LATENCY_COUNT):
        parts.append(f"avg {_mean_latency(counters)}")
    return " · ".join(parts) or "-"


@admin.register(Buyer)
class BuyerAdmin(admin.ModelAdmin):
    list_display = ["name", "endpoint", "enabled", "gvl_vendor_id", "timeout_ms", "qps_cap",
                    "currency", "supports_coppa"]  # fmt: skip
    list_filter = ["enabled", "supports_coppa", "currency"]
    search_fields = ["name", "endpoint"]
    actions = ["enable", "disable"]
    readonly_fields = ["todays_outcomes", "gvl_declarations", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "endpoint", "enabled"]}),
        ("Calling it", {"fields": ["timeout_ms", "qps_cap", "currency"]}),
        ("Privacy", {"fields": ["gvl_vendor_id", "gvl_declarations", "supports_coppa"]}),
        ("User sync", {"fields": ["sync_url", "sync_uid_macro"]}),
        ("Today", {"fields": ["todays_outcomes", "created_at", "updated_at"]}),
    ]

    def get_list_display(self, request: HttpRequest) -> list[str | Callable[[Any], str | bool]]:
        # One Redis read per page, not per row; the column closes over this request's copy.
        stats = todays_buyer_stats()

        @admin.display(description="today (UTC)")
        def today(obj: Buyer) -> str:
            return _summary(None if stats is None else stats.get(obj.pk, {}))

        return [*self.list_display, today]

    @admin.display(description="declared in the GVL")
    def gvl_declarations(self, obj: Buyer) -> str:
        # What its vendor declares decides its legal bases on GDPR traffic (docs/privacy.md).
        return vendor_summary(current_gvl(), obj.gvl_vendor_id, timezone.now())

    @admin.display(description="outcomes today (UTC)")
    def todays_outcomes(self, obj: Buyer) -> str:
        if obj.pk is None:
            return "-"
        stats = todays_buyer_stats()
        if stats is None:
            return "Redis is unavailable."
        counters = stats.get(obj.pk, {})
        rows = sorted((k, v) for k, v in counters.items() if k not in (LATENCY_SUM, LATENCY_COUNT))
        if not rows:
            return "No requests yet today."
        table = format_html_join("", "<tr><td>{}</td><td>{}</td></tr>", rows)
        return format_html(
            "<table><tbody>{}<tr><td>mean latency</td><td>{}</td></tr></tbody></table>",
            table,
            _mean_latency(counters),
        )

    @admin.action(description="Enable selected buyers")
    def enable(self, request: HttpRequest, queryset: QuerySet[Buyer]) -> None:
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable selected buyers")
    def disable(self, request: HttpRequest, queryset: QuerySet[Buyer]) -> None:
        self._set_enabled(request, queryset, False)

    def _set_enabled(self, request: HttpRequest, queryset: QuerySet[Buyer], enabled: bool) -> None:
        changed = queryset.exclude(enabled=enabled).update(enabled=enabled)
        if changed:
            # `update` sends no post_save: ask for the publish the signal would have.
            transaction.on_commit(request_snapshot_publish)
        state = "enabled" if enabled else "disabled"
        self.message_user(request, f"{changed} buyer(s) {state}.", messages.SUCCESS)
