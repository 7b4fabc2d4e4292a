"""Bulksheet pages in the Django admin, under the campaign list: upload, dry run, apply, export."""

from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from campaigns.bulk import access
from campaigns.bulk.apply import rows_processed
from campaigns.bulk.export import export_csv
from campaigns.bulk.services import queue_upload, validate_upload
from campaigns.bulk.sheet import max_bytes, max_rows
from campaigns.bulk.views import csv_download
from campaigns.models import Advertiser, BulkUpload, Campaign

# A dry run of 10,000 rows would make a page nobody reads; the API returns the whole diff.
SHOWN_CHANGES = 500
SHOWN_ERRORS = 1000
RECENT = 20


class ExportForm(forms.Form):
    organisation = forms.ModelChoiceField(queryset=Advertiser.objects.none())

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = cast("forms.ModelChoiceField[Advertiser]", self.fields["organisation"])
        field.queryset = access.organisations(user, write=True).order_by("name")


class UploadForm(ExportForm):
    file = forms.FileField(help_text="CSV in UTF-8; docs/bulksheets.md describes the columns.")


class BulksheetAdmin:
    """The pages, bound to the campaign admin for its permissions and the admin chrome."""

    def __init__(self, model_admin: "admin.ModelAdmin[Campaign]") -> None:
        self.model_admin = model_admin

    def urls(self) -> list[URLPattern]:
        wrap = self.model_admin.admin_site.admin_view
        return [
            path("bulksheets/", wrap(self.upload), name="campaigns_bulksheet_upload"),
            path("bulksheets/export/", wrap(self.export), name="campaigns_bulksheet_export"),
            path("bulksheets/<int:pk>/", wrap(self.detail), name="campaigns_bulksheet_detail"),
            path("bulksheets/<int:pk>/apply/", wrap(self.apply), name="campaigns_bulksheet_apply"),
            path(
                "bulksheets/<int:pk>/status.json",
                wrap(self.status),
                name="campaigns_bulksheet_status",
            ),
            path(
                "bulksheets/<int:pk>/result.csv",
                wrap(self.result),
                name="campaigns_bulksheet_result",
            ),
        ]

    def _check(self, request: HttpRequest) -> None:
        if not self.model_admin.has_change_permission(request):
            raise PermissionDenied

    def _context(self, request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
        return {
            **self.model_admin.admin_site.each_context(request),
            "opts": Campaign._meta,
            "title": title,
            **extra,
        }

    def _forms(self, request: HttpRequest, form: UploadForm | None = None) -> dict[str, Any]:
        return {
            "form": form or UploadForm(user=request.user),
            "export_form": ExportForm(user=request.user),
            "uploads": access.uploads(request.user)
            .recent()
            .defer("content", "result_csv")[:RECENT],
            "max_bytes": max_bytes(),
            "max_rows": max_rows(),
        }

    def upload(self, request: HttpRequest) -> HttpResponse:
        self._check(request)
        context = self._context(request, "Bulksheets")
        if request.method != "POST":
            return TemplateResponse(
                request,
                "admin/campaigns/bulksheet/upload.html",
                {**context, **self._forms(request)},
            )
        form = UploadForm(request.POST, request.FILES, user=request.user)
        if not form.is_valid():
            return TemplateResponse(
                request,
                "admin/campaigns/bulksheet/upload.html",
                {**context, **self._forms(request, form)},
            )
        upload, plan = validate_upload(
            advertiser=form.cleaned_data["organisation"],
            file=form.cleaned_data["file"],
            by=request.user,
        )
        # The dry run is shown right away rather than stored: a diff can run to megabytes.
        changes = plan.diff() if plan else []
        return TemplateResponse(
            request,
            "admin/campaigns/bulksheet/dry_run.html",
            {
                **self._context(request, f"Dry run of {upload.file_name}"),
                "upload": upload,
                "changes": changes[:SHOWN_CHANGES],
                "more_changes": max(0, len(changes) - SHOWN_CHANGES),
                "errors": upload.errors[:SHOWN_ERRORS],
                "more_errors": max(0, len(upload.errors) - SHOWN_ERRORS),
            },
        )

    def _upload(self, request: HttpRequest, pk: int) -> BulkUpload:
        self._check(request)
        upload = access.upload(request.user, pk)
        if upload is None:
            raise Http404
        return upload

    def detail(self, request: HttpRequest, pk: int) -> HttpResponse:
        upload = self._upload(request, pk)
        return TemplateResponse(
            request,
            "admin/campaigns/bulksheet/detail.html",
            {
                **self._context(request, f"Bulksheet {upload.file_name}"),
                "upload": upload,
                "rows_processed": rows_processed(upload),
                "errors": upload.errors[:SHOWN_ERRORS],
                "more_errors": max(0, len(upload.errors) - SHOWN_ERRORS),
            },
        )

    def apply(self, request: HttpRequest, pk: int) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        upload = self._upload(request, pk)
        if queue_upload(upload, by=request.user):
            messages.success(request, f"{upload.file_name} is queued; this page follows it.")
        else:
            messages.error(
                request,
                f"Only a validated upload can be applied: this one is "
                f"{upload.get_status_display().lower()}.",
            )
        return redirect("admin:campaigns_bulksheet_detail", pk=upload.pk)

    def status(self, request: HttpRequest, pk: int) -> JsonResponse:
        upload = self._upload(request, pk)
        return JsonResponse(
            {
                "status": upload.status,
                "status_label": upload.get_status_display(),
                "in_progress": upload.in_progress,
                "rows_total": upload.rows_total,
                "rows_processed": rows_processed(upload),
                "result_url": (
                    reverse("admin:campaigns_bulksheet_result", args=[pk])
                    if upload.result_csv
                    else None
                ),
            }
        )

    def result(self, request: HttpRequest, pk: int) -> HttpResponse:
        upload = self._upload(request, pk)
        if not upload.result_csv:
            raise PermissionDenied("This upload has no result file yet.")
        return csv_download(upload.result_csv, f"bulksheet-{pk}-result.csv")

    def export(self, request: HttpRequest) -> HttpResponse:
        self._check(request)
        form = ExportForm(request.GET, user=request.user)
        if not form.is_valid():
            messages.error(request, "Choose an organisation to export.")
            return redirect("admin:campaigns_bulksheet_upload")
        organisation = form.cleaned_data["organisation"]
        return csv_download(export_csv(organisation), f"bulksheet-{organisation.pk}.csv")


def admin_urls(model_admin: "admin.ModelAdmin[Campaign]") -> list[URLPattern]:
    """The bulksheet pages, for the campaign admin's get_urls()."""
    return BulksheetAdmin(model_admin).urls()
