import logging
from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.contenttypes.admin import GenericTabularInline
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import URLPattern, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from campaigns import audit, services
from campaigns.bulk.admin_views import admin_urls as bulksheet_urls
from campaigns.models import (
    Advertiser,
    ApiToken,
    AuditAction,
    AuditEntry,
    Campaign,
    Deal,
    LineItem,
    LineItemCreative,
    Membership,
    Placement,
    Publisher,
)
from campaigns.pacing.services import campaign_pacing

log = logging.getLogger(__name__)


class AuditTrailInline(GenericTabularInline):
    """The object's audit history, read-only, on its change page."""

    model = AuditEntry
    ct_field = "content_type"
    ct_fk_field = "object_id"
    extra = 0
    can_delete = False
    fields = ("created_at", "actor", "action", "changes")
    readonly_fields = fields
    ordering = ["-created_at"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AuditedAdmin(admin.ModelAdmin):
    """Edits made in admin enter the audit log like any other."""

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        before = (
            audit.snapshot_fields(type(obj).objects.get(pk=obj.pk)) if change and obj.pk else {}
        )
        after = audit.snapshot_fields(obj)
        changes = audit.diff(before, after)
        if change and changes:
            obj.version += 1
        super().save_model(request, obj, form, change)
        if changes or not change:
            action = AuditAction.UPDATE if change else AuditAction.CREATE
            if change and set(changes) == {"status"}:
                action = AuditAction.STATUS
            audit.record(obj, action, advertiser=self.organisation(obj), by=request.user,
                         changes=changes)  # fmt: skip

    def organisation(self, obj: Any) -> Advertiser:
        return obj.advertiser


class ArchivedNotDeleted:
    """What serves has delivery and billing history: it is archived, never deleted (the API
    refuses DELETE for the same reason). No delete button, no bulk delete."""

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _archive_each(
    model_admin: "admin.ModelAdmin[Any]",
    request: HttpRequest,
    queryset: QuerySet[Any],
    archive: Callable[..., Any],
    noun: str,
) -> None:
    """Archive through the services (audited, republished), each refusal reported."""
    archived = 0
    for obj in queryset:
        try:
            archive(obj, by=request.user)
            archived += 1
        except ValidationError as exc:
            model_admin.message_user(request, f"{obj}: {' '.join(exc.messages)}", messages.ERROR)
    model_admin.message_user(request, f"Archived {archived} {noun}(s).", messages.SUCCESS)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Advertiser)
class AdvertiserAdmin(admin.ModelAdmin):
    list_display = ["name", "time_zone", "currency", "created_at"]
    search_fields = ["name"]
    inlines = [MembershipInline]


class LineItemInline(admin.TabularInline):
    model = LineItem
    extra = 0
    can_delete = False
    fields = ["name", "status", "bid_type", "bid", "sizes"]
    show_change_link = True


@admin.register(Campaign)
class CampaignAdmin(ArchivedNotDeleted, AuditedAdmin):
    list_display = ["name", "advertiser", "status", "priority_tier", "start_at", "end_at",
                    "daily_budget"]  # fmt: skip
    list_filter = ["status", "priority_tier", "pacing_mode", "advertiser"]
    search_fields = ["name", "advertiser__name"]
    date_hierarchy = "start_at"
    readonly_fields = ["version", "pacing_state"]
    inlines = (LineItemInline, AuditTrailInline)
    actions = ["archive_selected"]

    @admin.action(description="Archive selected campaigns (they never serve again)")
    def archive_selected(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        _archive_each(self, request, queryset, services.archive_campaign, "campaign")

    @admin.display(description="Pacing today")
    def pacing_state(self, obj: Campaign) -> str:
        """Spend today against the schedule, the controller's rates (docs/pacing.md)."""
        if obj.pk is None:
            return "-"
        try:
            state = campaign_pacing(obj, timezone.now())
        except Exception:  # Redis down: the page still opens
            log.warning("pacing state unavailable for campaign %s", obj.pk, exc_info=True)
            return "unavailable"
        lines = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (li["name"], li["spend_today"], li["pass_through"], li["bid_multiplier"],
                 "spent" if li["exhausted"] else "")
                for li in state["line_items"]
            ),
        )  # fmt: skip
        return format_html(
            "<p data-pacing>{} {}: spent <b>{}</b> of <b>{}</b> {} (the schedule wants {} by "
            "now; pass-through {}; predicted end of day {}){}. <a href='{}'>Chart</a></p>"
            "<table><tr><th>Line item</th><th>Spent today</th><th>Pass-through</th>"
            "<th>Bid multiplier</th><th></th></tr>{}</table>",
            state["day"], state["time_zone"], state["spend_today"], state["budget_today"],
            state["currency"], state["schedule_now"], state["pass_through"],
            state["predicted_end_of_day_spend"] or "-",
            " - budget reached" if state["exhausted"] else "",
            reverse("pacing-chart", args=[obj.pk]), lines,
        )  # fmt: skip

    def get_urls(self) -> list[URLPattern]:
        # Bulksheet pages first: the change view's "<path:object_id>/" would take their paths.
        return [*bulksheet_urls(self), *super().get_urls()]


class AssignmentInline(admin.TabularInline):
    model = LineItemCreative
    extra = 0
    autocomplete_fields = ["creative"]


@admin.register(LineItem)
class LineItemAdmin(ArchivedNotDeleted, AuditedAdmin):
    list_display = ["name", "campaign", "status", "bid_type", "bid", "creative_rotation", "sizes"]
    list_filter = ["status", "bid_type", "creative_rotation", "campaign__advertiser"]
    search_fields = ["name", "campaign__name"]
    autocomplete_fields = ["campaign"]
    filter_horizontal = ["placements", "deals"]
    readonly_fields = ["version"]
    inlines = (AssignmentInline, AuditTrailInline)
    actions = ["archive_selected"]

    def organisation(self, obj: Any) -> Advertiser:
        return obj.campaign.advertiser

    @admin.action(description="Archive selected line items (they never serve again)")
    def archive_selected(self, request: HttpRequest, queryset: QuerySet[LineItem]) -> None:
        _archive_each(self, request, queryset, services.archive_line_item, "line item")


@admin.register(Deal)
class DealAdmin(AuditedAdmin):
    list_display = ["deal_id", "name", "advertiser", "floor", "fixed_price", "currency"]
    list_filter = ["advertiser"]
    search_fields = ["deal_id", "name"]
    readonly_fields = ["version"]
    inlines = (AuditTrailInline,)


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["created_at", "advertiser", "actor", "action", "content_type", "object_repr"]
    list_filter = ["action", "content_type", "advertiser"]
    search_fields = ["object_repr", "object_id"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "user__username", "prefix"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # issued in the dashboard, where the key is shown once


class PlacementInline(admin.TabularInline):
    model = Placement
    extra = 0
    fields = ["name", "sizes", "floor_cpm", "is_active", "key"]
    readonly_fields = ["key"]


@admin.register(Publisher)
class PublisherAdmin(admin.ModelAdmin):
    list_display = ["name", "domain"]
    search_fields = ["name", "domain"]
    inlines = [PlacementInline]


@admin.register(Placement)
class PlacementAdmin(admin.ModelAdmin):
    list_display = ["name", "publisher", "sizes", "floor_cpm", "is_active"]
    list_filter = ["is_active", "publisher"]
    search_fields = ["name", "publisher__name"]
    readonly_fields = ["key"]


# FX rate sets (campaigns/fx/admin.py) register themselves on import.
from campaigns.fx import admin as fx_admin  # noqa: E402, F401
