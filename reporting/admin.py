from django.conf import settings
from django.contrib import admin
from django.db import models
from django.http import HttpRequest
from django_redis import get_redis_connection
from redis.exceptions import RedisError

from reporting.ingest import check_backlog
from reporting.models import StreamWatermark
from serving.keys import RedisKeys


@admin.register(StreamWatermark)
class IngestionStatusAdmin(admin.ModelAdmin):
    """Where ingestion is in the event stream, and how much it still has to roll up."""

    list_display = ["stream", "last_id", "updated_at", "backlog"]
    readonly_fields = ["stream", "last_id", "updated_at", "backlog"]

    @admin.display(description="stream backlog (measured now)")
    def backlog(self, obj: StreamWatermark) -> str:
        try:
            b = check_backlog(get_redis_connection("default"), RedisKeys(settings.REDIS_KEY_PREFIX))
        except RedisError as exc:
            return f"Redis unreachable: {exc}"
        behind = "unknown" if b.unrolled is None else f"{b.unrolled:,}"
        state = "OVER THE LIMIT, nothing is trimmed" if b.over else "within the limit"
        return (
            f"{b.length:,} entries, {behind} not rolled up; {state} of {b.limit:,}"
            f" (crossed {b.crossings} times)"
        )

    # The watermark is ingestion's own bookkeeping: shown, never edited by hand.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False
