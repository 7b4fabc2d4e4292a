"""Bulksheets in the console: upload (a dry run with its diff), apply all-or-nothing with
progress, the result file, and export. The same services and access rules as the API and
the admin pages (`campaigns.bulk`)."""

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from campaigns.bulk import access
from campaigns.bulk.admin_views import SHOWN_CHANGES, SHOWN_ERRORS, ExportForm, UploadForm
from campaigns.bulk.apply import rows_processed
from campaigns.bulk.export import export_csv
from campaigns.bulk.services import queue_upload, validate_upload
from campaigns.bulk.sheet import max_bytes, max_rows
from campaigns.bulk.views import csv_download
from campaigns.models import BulkUpload
from campaigns.organisations import current_organisation

RECENT = 20


def _page(request: HttpRequest, form: UploadForm | None = None) -> HttpResponse:
    writable = access.organisations(request.user, write=True)
    export = ExportForm(user=request.user)
    # Any member exports; the export form lists every organisation the user belongs to.
    export.fields["organisation"].queryset = access.organisations(  # type: ignore[attr-defined]
        request.user, write=False
    ).order_by("name")
    initial = {"organisation": current_organisation(request)}
    return render(
        request,
        "console/bulk/upload.html",
        {
            "form": form or (UploadForm(user=request.user, initial=initial) if writable else None),
            "export_form": export,
            "uploads": access.uploads(request.user)
            .recent()
            .defer("content", "result_csv")[:RECENT],
            "max_bytes": max_bytes(),
            "max_rows": max_rows(),
        },
    )


@login_required
def bulk_upload(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _page(request)
    if not access.organisations(request.user, write=True).exists():
        raise PermissionDenied("Only admins and managers upload bulksheets.")
    form = UploadForm(request.POST, request.FILES, user=request.user)
    if not form.is_valid():
        return _page(request, form)
    upload, plan = validate_upload(
        advertiser=form.cleaned_data["organisation"], file=form.cleaned_data["file"],
        by=request.user,
    )  # fmt: skip
    # The dry run is shown right away rather than stored: a diff can run to megabytes.
    changes = plan.diff() if plan else []
    return render(
        request,
        "console/bulk/dry_run.html",
        {
            "upload": upload,
            "changes": changes[:SHOWN_CHANGES],
            "more_changes": max(0, len(changes) - SHOWN_CHANGES),
            "errors": upload.errors[:SHOWN_ERRORS],
            "more_errors": max(0, len(upload.errors) - SHOWN_ERRORS),
        },
    )


def _upload(request: HttpRequest, pk: int) -> BulkUpload:
    upload = access.upload(request.user, pk)
    if upload is None:
        raise Http404
    return upload


@login_required
def bulk_detail(request: HttpRequest, pk: int) -> HttpResponse:
    upload = _upload(request, pk)
    return render(
        request,
        "console/bulk/detail.html",
        {
            "upload": upload,
            "rows_processed": rows_processed(upload),
            "errors": upload.errors[:SHOWN_ERRORS],
            "more_errors": max(0, len(upload.errors) - SHOWN_ERRORS),
        },
    )


@login_required
@require_POST
def bulk_apply(request: HttpRequest, pk: int) -> HttpResponse:
    upload = _upload(request, pk)
    if queue_upload(upload, by=request.user):
        messages.success(request, f"{upload.file_name} is queued; this page follows it.")
    else:
        messages.error(
            request,
            "Only a validated upload can be applied: this one is "
            f"{upload.get_status_display().lower()}.",
        )
    return redirect("console-bulk-detail", pk=upload.pk)


@login_required
def bulk_status(request: HttpRequest, pk: int) -> JsonResponse:
    upload = _upload(request, pk)
    body: dict[str, Any] = {
        "status": upload.status,
        "status_label": upload.get_status_display(),
        "in_progress": upload.in_progress,
        "rows_total": upload.rows_total,
        "rows_processed": rows_processed(upload),
        "result_url": reverse("console-bulk-result", args=[pk]) if upload.result_csv else None,
    }
    return JsonResponse(body)


@login_required
def bulk_result(request: HttpRequest, pk: int) -> HttpResponse:
    upload = _upload(request, pk)
    if not upload.result_csv:
        raise Http404("This upload has no result file yet.")
    return csv_download(upload.result_csv, f"bulksheet-{pk}-result.csv")


@login_required
def bulk_export(request: HttpRequest) -> HttpResponse:
    raw = request.GET.get("organisation", "")
    organisation = (
        access.organisations(request.user, write=False).filter(pk=int(raw)).first()
        if raw.isdigit() and len(raw) < 19
        else None
    )
    if organisation is None:
        raise Http404
    return csv_download(export_csv(organisation), f"bulksheet-{organisation.pk}.csv")
