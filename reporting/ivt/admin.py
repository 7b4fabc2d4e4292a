"""Ad ops' view of invalid traffic: the rules that fired most, the thresholds (editable), and
refunds (`reporting.admin` imports this module so that admin finds it)."""

from typing import Any

from django.contrib import admin
from django.db import models, transaction
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from reporting.ivt.models import IvtHourly, IvtRefund, IvtThresholds, RefundStatus
from reporting.ivt.services import current_thresholds, publish_thresholds


@admin.register(IvtHourly)
class IvtHourlyAdmin(admin.ModelAdmin):
    """Invalid traffic per hour; the list's header sums it per reason (the rules that fired
    most first) for the filters chosen."""

    list_display = [
        "hour", "placement_id", "line_item_id", "reason", "impressions", "clicks",
        "flagged_impressions", "flagged_clicks", "withheld", "currency",
    ]  # fmt: skip
    list_filter = ["reason", "hour"]
    search_fields = ["=placement_id", "=line_item_id", "=campaign_id"]
    date_hierarchy = "hour"

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None) or {}
        cl = context.get("cl")
        if cl is not None:
            fired = (
                cl.queryset.values("reason")
                .annotate(impressions=Sum("impressions"), clicks=Sum("clicks"))
                .order_by("-impressions", "-clicks")
            )
            summary = ", ".join(
                f"{r['reason']}: {r['impressions']} impressions, {r['clicks']} clicks"
                for r in fired
            )
            context["title"] = f"Invalid traffic. Rules that fired most: {summary or 'none'}"
        return response

    # Rollups are ingestion's (and refunds'): shown, never edited by hand.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False


@admin.register(IvtThresholds)
class IvtThresholdsAdmin(admin.ModelAdmin):
    """The one thresholds row: saving publishes it to serving (within 30 s everywhere)."""

    list_display = ["__str__", "enabled", "datacenter_action", "min_click_ms", "updated_at"]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        row = current_thresholds()  # one row: straight to its form
        return HttpResponseRedirect(reverse("admin:reporting_ivtthresholds_change", args=[row.pk]))

    def save_model(self, request: HttpRequest, obj: IvtThresholds, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        publish_thresholds(obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False


@admin.register(IvtRefund)
class IvtRefundAdmin(admin.ModelAdmin):
    """Invalidate a placement's or a pseudonym's billed events for a time window after the
    fact; a Celery job moves them and reconciles spend (`reporting.ivt.refunds`)."""

    list_display = [
        "__str__", "status", "impressions", "clicks", "refunded", "requested_by", "created_at",
    ]  # fmt: skip
    fields = ["scope", "placement_id", "pseudonym", "start", "end", "note"]
    # Once asked for, a refund is a record: shown, never edited.
    done_fields = (
        "scope", "placement_id", "pseudonym", "start", "end", "note",
        "status", "impressions", "clicks", "refunded", "error", "done_at",
    )  # fmt: skip

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.done_fields if obj is not None else ()

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.done_fields if obj is not None else self.fields

    def save_model(self, request: HttpRequest, obj: IvtRefund, form: Any, change: bool) -> None:
        from reporting.ivt.tasks import refund_ivt_task

        if change:
            return  # a refund is never edited
        obj.requested_by = request.user  # type: ignore[assignment]
        obj.status = RefundStatus.PENDING
        super().save_model(request, obj, form, change)
        transaction.on_commit(lambda: refund_ivt_task.delay(obj.pk))

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False
