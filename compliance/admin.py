from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import BooleanField, ExpressionWrapper, Q, QuerySet
from django.forms import ModelForm
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern, path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.views.decorators.debug import sensitive_post_parameters

from compliance import services
from compliance.dsar import progress
from compliance.gvl_store import gvl_version_in_force
from compliance.models import DataSubjectRequest, RequestKind, RequestStatus, VendorList


class FileRequestForm(forms.ModelForm):
    """Filing a request: the id is read here, turned into pseudonyms and never saved."""

    subject_id = forms.CharField(
        label="User or device id",
        max_length=services.MAX_ID_LENGTH,
        strip=True,
        widget=forms.TextInput(attrs={"autocomplete": "off", "size": 60}),
        help_text="As the app or site sends it. It is not stored: only its pseudonyms are.",
    )

    class Meta:
        model = DataSubjectRequest
        fields = ["kind", "subject_kind", "subject_id", "notes"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "subject_id" in data and "subject_kind" in data:
            try:
                data["subject_id"] = services.clean_subject_id(
                    data["subject_kind"], data["subject_id"]
                )
            except forms.ValidationError as exc:
                self.add_error(None, exc)
        return data


def export_download(request: DataSubjectRequest) -> HttpResponse:
    response = HttpResponse(request.export, content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="dsar-{request.pk}-export.json"'
    return response


@admin.register(DataSubjectRequest)
class DataSubjectRequestAdmin(admin.ModelAdmin):
    list_display = [
        "id", "kind", "subject_kind", "fingerprint", "status", "progress_bar", "requested_by",
        "requested_at", "finished_at", "export_link",
    ]  # fmt: skip
    list_filter = ["kind", "status", "subject_kind"]
    search_fields = ["fingerprint", "notes"]
    readonly_fields = [
        "kind", "subject_kind", "fingerprint", "status", "progress_bar", "counts_text",
        "export_link", "error", "requested_by", "requested_at", "started_at", "finished_at",
        "runs", "window_start", "window_end", "pseudonyms",
    ]  # fmt: skip
    actions = ["run_again"]
    change_form_template = "admin/compliance/datasubjectrequest/change_form.html"
    change_list_template = "admin/compliance/datasubjectrequest/change_list.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[DataSubjectRequest]:
        # Whether an export is held, without loading exports into the list.
        has_export = ExpressionWrapper(~Q(export=""), output_field=BooleanField())
        return (
            super()
            .get_queryset(request)
            .select_related("requested_by")
            .defer("export")
            .annotate(has_export=has_export)
        )

    def get_form(
        self,
        request: HttpRequest,
        obj: DataSubjectRequest | None = None,
        change: bool = False,
        **kwargs: Any,
    ) -> "type[ModelForm[Any]]":
        if obj is None:
            kwargs["form"] = FileRequestForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: DataSubjectRequest | None = None) -> Any:
        if obj is None:
            return FileRequestForm.Meta.fields
        return [*self.readonly_fields, "notes"]

    def get_readonly_fields(
        self, request: HttpRequest, obj: DataSubjectRequest | None = None
    ) -> Any:
        return self.readonly_fields if obj is not None else []

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the record of who asked, and what was done, is kept

    @method_decorator(sensitive_post_parameters("subject_id"))
    def add_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return super().add_view(request, *args, **kwargs)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        filed = services.file_request(
            kind=obj.kind,
            subject_kind=obj.subject_kind,
            subject_id=form.cleaned_data["subject_id"],
            by=request.user,
            notes=obj.notes,
        )
        # The admin goes on with (logs, redirects to) the object the service made.
        for f in DataSubjectRequest._meta.concrete_fields:
            setattr(obj, f.attname, getattr(filed, f.attname))
        obj._state.adding = False

    @admin.display(description="progress")
    def progress_bar(self, obj: DataSubjectRequest) -> str:
        scanned, total = progress(obj)
        return format_html(
            '<progress class="dsar-progress" max="{}" value="{}" data-url="{}" data-active="{}">'
            "</progress> {}",
            total or 1,
            scanned if total else int(obj.status == RequestStatus.DONE),
            reverse("admin:compliance_datasubjectrequest_status", args=[obj.pk]),
            "true" if obj.in_progress else "false",
            f"{scanned:,} of {total:,} stream entries" if total else "",
        )

    @admin.display(description="counts")
    def counts_text(self, obj: DataSubjectRequest) -> str:
        return ", ".join(f"{name.replace('_', ' ')}: {n:,}" for name, n in obj.counts.items())

    @admin.display(description="export")
    def export_link(self, obj: DataSubjectRequest) -> str:
        if obj.kind != RequestKind.ACCESS or obj.status != RequestStatus.DONE:
            return ""
        if not getattr(obj, "has_export", True):
            return "deleted after the retention period"
        url = reverse("admin:compliance_datasubjectrequest_export", args=[obj.pk])
        return format_html('<a href="{}" class="dsar-export">Download JSON</a>', url)

    @admin.action(description="Run the selected failed requests again")
    def run_again(self, request: HttpRequest, queryset: QuerySet[DataSubjectRequest]) -> None:
        queued = sum(services.run_again(r) for r in queryset)
        if queued:
            self.message_user(request, f"{queued} request(s) queued again.", messages.SUCCESS)
        else:
            self.message_user(request, "Only failed requests run again.", messages.WARNING)

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path(
                "<int:pk>/status.json",
                wrap(self.status_view),
                name="compliance_datasubjectrequest_status",
            ),
            path(
                "<int:pk>/export.json",
                wrap(self.export_view),
                name="compliance_datasubjectrequest_export",
            ),
            *super().get_urls(),
        ]

    def _get(self, request: HttpRequest, pk: int) -> DataSubjectRequest:
        if not self.has_view_permission(request):
            raise PermissionDenied
        obj = DataSubjectRequest.objects.filter(pk=pk).first()
        if obj is None:
            raise Http404
        return obj

    def status_view(self, request: HttpRequest, pk: int) -> JsonResponse:
        obj = self._get(request, pk)
        scanned, total = progress(obj)
        return JsonResponse(
            {
                "status": obj.status,
                "status_label": obj.get_status_display(),
                "in_progress": obj.in_progress,
                "entries_scanned": scanned,
                "entries_total": total,
                "counts": obj.counts,
            }
        )

    def export_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        obj = self._get(request, pk)
        if not obj.export:
            raise Http404("This request has no export (any more).")
        return export_download(obj)


@admin.register(VendorList)
class VendorListAdmin(admin.ModelAdmin):
    """The Global Vendor List versions loaded; buyers are judged by the newest."""

    list_display = ["version", "in_force", "tcf_policy_version", "last_updated",
                    "vendor_count", "source", "fetched_at"]  # fmt: skip
    readonly_fields = ["version", "tcf_policy_version", "last_updated", "vendor_count",
                       "source", "fetched_at"]  # fmt: skip
    exclude = ["data"]

    # Versions come from the refresh job (GVL_URL) only: the admin looks, it does not edit.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        version = gvl_version_in_force()
        if version is None:
            self.message_user(
                request,
                "No Global Vendor List is loaded (set GVL_PATH or GVL_URL): buyers are judged "
                "by the TC string alone.",
                messages.WARNING,
            )
        else:
            self.message_user(request, f"Buyers are judged by GVL version {version}.")
        return super().changelist_view(request, extra_context)

    @admin.display(description="in force", boolean=True)
    def in_force(self, obj: VendorList) -> bool:
        newest = VendorList.objects.newest()
        return newest is not None and newest.pk == obj.pk
