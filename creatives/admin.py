"""Ad ops: creatives of every kind, the review queue with previews, verified domains.

Saving goes through `creatives.services`, like the API: files are checked and stored, the
automatic checks run, and an edit sends the creative back to review.
"""

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join

from campaigns.admin import AuditTrailInline
from creatives import services
from creatives.files import asset_url
from creatives.forms import CreativeForm
from creatives.models import (
    Creative,
    Rendition,
    ReviewQueueEntry,
    ReviewStatus,
    VerifiedDomain,
)


class RenditionInline(admin.TabularInline):
    model = Rendition
    extra = 0
    max_num = 0
    can_delete = False
    fields = ("link", "mime_type", "width", "height", "duration", "bitrate", "codec", "file_size")
    readonly_fields = fields

    @admin.display(description="File")
    def link(self, obj: Rendition) -> str:
        return format_html('<a href="{}">{}</a>', asset_url(obj.file.name or ""), obj.original_name)


def _fieldsets() -> list[Any]:
    return [
        (None, {"fields": ["advertiser", "name", "kind", "click_url", "categories", "secure"]}),
        ("Image (image and native)", {"fields": ["size", "image", "alt_text"]}),
        ("HTML5: a third-party tag or a zip bundle", {
            "fields": ["html_tag", "bundle", "entry_file"]}),
        ("Video and audio: media files or a VAST tag", {
            "fields": ["media_files", "vast_tag_url", "duration", "universal_ad_id",
                       "ad_verifications"]}),
        ("Native", {"fields": ["title", "body", "call_to_action", "sponsored_by"]}),
    ]  # fmt: skip


@admin.register(Creative)
class CreativeAdmin(admin.ModelAdmin):
    form = CreativeForm
    change_form_template = "admin/creatives/creative/change_form.html"
    list_display = [
        "name", "advertiser", "kind", "size", "status_label", "checks", "reviewed_by",
        "reviewed_at", "thumbnail", "preview_link",
    ]  # fmt: skip
    list_filter = ["status", "kind", "advertiser"]
    search_fields = ["name", "advertiser__name"]
    list_select_related = ["advertiser", "reviewed_by"]
    actions = ["approve_selected", "reject_selected", "archive_selected"]
    inlines = [RenditionInline, AuditTrailInline]
    review_fields: list[str] = [
        "status", "rejection_reason", "check_list", "reviewed_by", "reviewed_at", "adomain",
        "archived_at", "preview",
    ]  # fmt: skip

    def get_fieldsets(self, request: HttpRequest, obj: Creative | None = None) -> Any:
        fieldsets = _fieldsets()
        if obj is not None:
            fieldsets.insert(0, ("Review", {"fields": self.review_fields}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Creative | None = None) -> Any:
        return self.review_fields if obj is not None else []

    def get_inlines(self, request: HttpRequest, obj: Creative | None) -> Any:
        if obj is None:
            return []
        return self.inlines if obj.renditions.exists() else [AuditTrailInline]

    # -- saving through the services ------------------------------------------------------

    def save_model(self, request: HttpRequest, obj: Creative, form: Any, change: bool) -> None:
        saved = form.save_through_services(by=request.user)
        obj.pk, obj._state.adding = saved.pk, False

    # -- list columns --------------------------------------------------------------------

    @admin.display(description="Status", ordering="status")
    def status_label(self, obj: Creative) -> str:
        colours = {"approved": "#2e7d32", "rejected": "#c62828", "pending": "#ef6c00"}
        label = obj.get_status_display() + (" (archived)" if obj.archived_at else "")
        return format_html(
            '<strong style="color:{}">{}</strong>', colours.get(obj.status, "inherit"), label
        )

    @admin.display(description="Automatic checks")
    def checks(self, obj: Creative) -> str:
        if not obj.check_failures:
            return "passed" if obj.checked_at else "-"
        return format_html(
            '<span style="color:#c62828" title="{}">{} failed</span>',
            " ".join(f["message"] for f in obj.check_failures),
            len(obj.check_failures),
        )

    @admin.display(description="Automatic checks")
    def check_list(self, obj: Creative) -> str:
        if not obj.check_failures:
            return "All passed." if obj.checked_at else "Not run (made before the review existed)."
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li><b>{}</b>: {}</li>",
                ((f["field"], f["message"]) for f in obj.check_failures),
            ),
        )

    @admin.display(description="")
    def thumbnail(self, obj: Creative) -> str:
        if not obj.image:
            return "-"
        return format_html(
            '<img src="{}" alt="" style="max-width:120px;max-height:80px">',
            asset_url(obj.image.name or ""),
        )

    @admin.display(description="Preview")
    def preview_link(self, obj: Creative) -> str:
        return format_html(
            '<a href="{}" target="_blank">preview</a>', reverse("creative-preview", args=[obj.pk])
        )

    @admin.display(description="As served")
    def preview(self, obj: Creative) -> str:
        return format_html(
            '<iframe src="{}" title="Preview" style="width:100%;height:540px;border:1px solid '
            '#ccc"></iframe>',
            reverse("creative-preview", args=[obj.pk]),
        )

    # -- review ----------------------------------------------------------------------------

    @admin.action(description="Approve selected creatives")
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[Creative]) -> None:
        approved = 0
        for creative in queryset.select_related("advertiser"):
            try:
                services.approve_creative(creative, by=request.user)
                approved += 1
            except ValidationError as exc:
                self.message_user(
                    request, f"{creative.name}: {' '.join(exc.messages)}", messages.ERROR
                )
        if approved:
            self.message_user(request, f"Approved {approved} creative(s).", messages.SUCCESS)

    @admin.action(description="Reject selected creatives…")
    def reject_selected(
        self, request: HttpRequest, queryset: QuerySet[Creative]
    ) -> HttpResponse | None:
        reason = request.POST.get("reason", "").strip()
        if "apply" in request.POST and reason:
            # Counted as they go: from the review queue, a rejected creative leaves the
            # queryset, so counting it afterwards says 0.
            rejected = 0
            for creative in queryset.select_related("advertiser"):
                try:
                    services.reject_creative(creative, by=request.user, reason=reason)
                    rejected += 1
                except ValidationError as exc:
                    self.message_user(
                        request, f"{creative.name}: {' '.join(exc.messages)}", messages.ERROR
                    )
            self.message_user(request, f"Rejected {rejected} creative(s).", messages.SUCCESS)
            return None
        if "apply" in request.POST:
            self.message_user(request, "Give the reason the advertiser will read.", messages.ERROR)
        return TemplateResponse(
            request,
            "admin/creatives/creative/reject.html",
            {
                **self.admin_site.each_context(request),
                "title": "Reject creatives",
                "creatives": queryset,
                "opts": self.model._meta,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "action": "reject_selected",
            },
        )

    @admin.action(description="Archive selected creatives (they never serve again)")
    def archive_selected(self, request: HttpRequest, queryset: QuerySet[Creative]) -> None:
        archived = 0
        for creative in queryset:
            services.archive_creative(creative, by=request.user)
            archived += 1
        self.message_user(request, f"Archived {archived} creative(s).", messages.SUCCESS)

    def has_delete_permission(self, request: HttpRequest, obj: Creative | None = None) -> bool:
        # A creative with delivery history is billing evidence: archive it instead.
        return False

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        view = self.admin_site.admin_view(self.review_view)
        return [
            path("<int:pk>/review/", view, name="{}_{}_review".format(*info)),
            *super().get_urls(),
        ]

    def review_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """The approve and reject buttons of the change page."""
        creative = get_object_or_404(Creative, pk=pk)
        if request.method != "POST" or not self.has_change_permission(request, creative):
            return HttpResponseRedirect(reverse("admin:creatives_creative_change", args=[pk]))
        try:
            if "approve" in request.POST:
                services.approve_creative(creative, by=request.user)
                self.message_user(request, f"Approved {creative.name}.", messages.SUCCESS)
            else:
                services.reject_creative(
                    creative, by=request.user, reason=request.POST.get("reason", "")
                )
                self.message_user(request, f"Rejected {creative.name}.", messages.SUCCESS)
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)
        # From the queue, on to the next creative; otherwise back to this one.
        if self.model is ReviewQueueEntry:
            return HttpResponseRedirect(reverse("admin:creatives_reviewqueueentry_changelist"))
        return HttpResponseRedirect(reverse("admin:creatives_creative_change", args=[pk]))


@admin.register(ReviewQueueEntry)
class ReviewQueueAdmin(CreativeAdmin):
    """Pending creatives, oldest first, failed checks shown: what ad ops review next."""

    list_display = [
        "name", "advertiser", "kind", "size", "checks", "updated_at", "thumbnail", "preview_link",
    ]  # fmt: skip
    list_filter = ["kind", "advertiser"]
    ordering = ["updated_at", "id"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ReviewQueueEntry]:
        return (
            super()
            .get_queryset(request)
            .filter(status=ReviewStatus.PENDING, archived_at__isnull=True)
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(VerifiedDomain)
class VerifiedDomainAdmin(admin.ModelAdmin):
    list_display = ["domain", "advertiser", "note", "verified_by", "created_at"]
    list_filter = ["advertiser"]
    search_fields = ["domain", "advertiser__name"]
    fields = ["advertiser", "domain", "note"]

    def save_model(
        self, request: HttpRequest, obj: VerifiedDomain, form: Any, change: bool
    ) -> None:
        if obj.verified_by_id is None:
            obj.verified_by = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)
        # Creatives waiting on this domain pass their checks now.
        services.recheck_waiting_creatives(obj.advertiser)
