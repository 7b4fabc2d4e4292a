from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.db import models
from django.http import HttpRequest
from django_redis import get_redis_connection
from redis.exceptions import RedisError

from reporting.ingest import check_backlog

# Model versions (reporting/learning/admin.py) register themselves on import.
from reporting.learning import admin as learning_admin  # noqa: F401
from reporting.models import Conversion, ConversionKey, StreamWatermark
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


@admin.register(ConversionKey)
class ConversionKeyAdmin(admin.ModelAdmin):
    """Advertisers' postback keys: the secret is shown once, when the key is made."""

    list_display = ["name", "advertiser", "key_id", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["advertiser"]
    readonly_fields = ["key_id", "created_at", "last_used_at"]
    fields = ["advertiser", "name", "key_id", "created_at", "last_used_at", "revoked_at"]

    def save_model(self, request: HttpRequest, obj: ConversionKey, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if not change:
            self.message_user(
                request,
                f"Key {obj.key_id} made. Its secret, shown this once: {obj.secret}",
                messages.WARNING,
            )

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False  # revoke instead: the conversions it reported stay explained


@admin.register(Conversion)
class ConversionAdmin(admin.ModelAdmin):
    """Conversions as recorded and attributed (read-only; data-subject requests erase them)."""

    list_display = ["converted_at", "advertiser_id", "event", "value", "currency", "order_id",
                    "attribution", "campaign_id", "line_item_id", "source"]  # fmt: skip
    list_filter = ["attribution", "source", "event"]
    search_fields = ["order_id", "decision_id"]
    date_hierarchy = "converted_at"
    exclude = ["pseudonym"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False


# The invalid-traffic area's admin lives in its own package; imported so that admin finds it.
import reporting.ivt.admin  # noqa: E402, F401
