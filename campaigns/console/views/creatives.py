"""The organisation's creative library: upload each kind, preview as served, review status
(a rejection's reason shown wherever the creative appears), edit, archive."""

from decimal import Decimal
from typing import Any, cast

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from campaigns.console import access
from campaigns.console.forms import add_service_errors, split_list
from campaigns.console.views.common import creative_for, run_move
from campaigns.models import Advertiser, AuditEntry, LineItemCreative
from campaigns.organisations import current_organisation
from creatives import services
from creatives.forms import CreativeForm
from creatives.models import Creative, CreativeKind, ReviewStatus

PAGE_SIZE = 25
# The fields each kind's upload form shows, after the common ones.
KIND_FIELDS = {
    CreativeKind.IMAGE: ["size", "image", "alt_text"],
    CreativeKind.HTML5: ["size", "bundle", "entry_file", "html_tag"],
    CreativeKind.VIDEO: [
        "media_files",
        "vast_tag_url",
        "duration",
        "universal_ad_id",
        "ad_verifications",
    ],
    CreativeKind.AUDIO: [
        "media_files",
        "vast_tag_url",
        "duration",
        "universal_ad_id",
        "ad_verifications",
    ],
    CreativeKind.NATIVE: ["title", "body", "call_to_action", "sponsored_by", "image", "alt_text"],
}
COMMON_FIELDS = ["name", "click_url", "categories", "secure"]
# Service error keys that are not form fields.
ERROR_FIELDS = {"media": "media_files", "advertiser": None}


class ConsoleCreativeForm(CreativeForm):
    """The shared creative form with the organisation chosen for the user and IAB categories
    typed as codes rather than JSON."""

    categories = forms.CharField(
        required=False, help_text="IAB content categories of the ad, like IAB8, IAB8-5."
    )

    def __init__(
        self, *args: Any, organisations: QuerySet[Advertiser], kind: str, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        # Only this kind's fields: the others keep their stored values (or defaults).
        shown = {"advertiser", "kind", *COMMON_FIELDS, *KIND_FIELDS[CreativeKind(kind)]}
        for name in [n for n in self.fields if n not in shown]:
            del self.fields[name]
        field = cast("forms.ModelChoiceField[Advertiser]", self.fields["advertiser"])
        field.queryset = organisations
        field.empty_label = None
        field.label = "Organisation"
        if organisations.count() == 1 or self.instance.pk:
            field.widget = forms.HiddenInput()
        self.fields["kind"].widget = forms.HiddenInput()
        if self.instance.pk and not self.is_bound:
            self.initial["categories"] = ", ".join(self.instance.categories)
        if "duration" in self.fields:
            # Read from uploaded renditions; only a VAST tag needs it typed.
            self.fields["duration"].required = False

    def clean_duration(self) -> Decimal:
        value = self.cleaned_data.get("duration")
        return value if value is not None else self.instance.duration or Decimal(0)

    def clean_categories(self) -> list[str]:
        return split_list(self.cleaned_data.get("categories") or "")

    def visible(self) -> list[Any]:
        return [self[name] for name in self.fields if name not in ("advertiser", "kind")]


def _library(request: HttpRequest) -> QuerySet[Creative]:
    creatives = Creative.objects.for_user(request.user)
    organisation = current_organisation(request)
    if organisation is not None:
        creatives = creatives.filter(advertiser=organisation)
    return creatives


def rejected_notice(request: HttpRequest) -> list[Creative]:
    """Rejected, unarchived creatives: the notice at the top of the console's pages."""
    return list(
        _library(request)
        .filter(status=ReviewStatus.REJECTED, archived_at__isnull=True)
        .order_by("-reviewed_at")[:5]
    )


@login_required
def creative_list(request: HttpRequest) -> HttpResponse:
    creatives = _library(request)
    status = request.GET.get("status", "")
    if status in ReviewStatus.values:
        creatives = creatives.filter(status=status, archived_at__isnull=True)
    elif status == "archived":
        creatives = creatives.filter(archived_at__isnull=False)
    else:
        status = ""
        creatives = creatives.filter(archived_at__isnull=True)
    kind = request.GET.get("kind", "")
    if kind in CreativeKind.values:
        creatives = creatives.filter(kind=kind)
    query = request.GET.get("q", "").strip()[:100]
    if query:
        creatives = creatives.filter(Q(name__icontains=query))
    creatives = (
        creatives.select_related("advertiser")
        .annotate(used_by=Count("assignments"))
        .order_by("-created_at", "-id")
    )
    page = Paginator(creatives, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "console/creatives/list.html",
        {
            "page": page,
            "status": status,
            "kind": kind,
            "query": query,
            "kinds": CreativeKind.choices,
            "statuses": ReviewStatus.choices,
            "can_create": access.writable(request.user).exists(),
            "rejected": rejected_notice(request),
        },
    )


def _save(request: HttpRequest, form: ConsoleCreativeForm) -> Creative | None:
    if not form.is_valid():
        return None
    try:
        with transaction.atomic():
            return form.save_through_services(by=request.user)
    except ValidationError as exc:
        if hasattr(exc, "error_dict"):
            exc = ValidationError(
                {ERROR_FIELDS.get(k, k) or "__all__": v for k, v in exc.error_dict.items()}
            )
        add_service_errors(form, exc)
        return None


@login_required
def creative_create(request: HttpRequest) -> HttpResponse:
    organisations = access.writable(request.user)
    if not organisations.exists():
        raise PermissionDenied("Your role does not allow uploading creatives.")
    kind = request.POST.get("kind") or request.GET.get("kind") or CreativeKind.IMAGE
    kind = kind if kind in CreativeKind.values else CreativeKind.IMAGE
    working = access.working_organisation(request)
    default = working if working in organisations else organisations.first()
    if request.method == "POST":
        form = ConsoleCreativeForm(
            request.POST, request.FILES, organisations=organisations, kind=kind
        )
        creative = _save(request, form)
        if creative is not None:
            after = request.POST.get("line_item", "")
            if after.isdigit():
                return redirect(reverse("console-line-item-creatives", args=[int(after)]))
            return redirect("console-creative", pk=creative.pk)
    else:
        form = ConsoleCreativeForm(
            initial={"advertiser": default, "kind": kind, "secure": True},
            organisations=organisations,
            kind=kind,
        )
    return render(
        request,
        "console/creatives/form.html",
        {
            "form": form,
            "kind": kind,
            "kinds": CreativeKind.choices,
            "fields": form.visible(),
            "line_item": request.GET.get("line_item") or request.POST.get("line_item", ""),
        },
    )


@login_required
def creative_detail(request: HttpRequest, pk: int) -> HttpResponse:
    creative = creative_for(request, pk)
    assignments = (
        LineItemCreative.objects.filter(creative=creative)
        .select_related("line_item__campaign")
        .order_by("line_item__campaign__name", "line_item__name")
    )
    history = AuditEntry.objects.for_object(creative).select_related("actor")[:20]
    return render(
        request,
        "console/creatives/detail.html",
        {
            "creative": creative,
            "assignments": list(assignments),
            "renditions": list(creative.renditions.all()),
            "history": list(history),
            "can_write": access.can_write(request.user, creative.advertiser),
        },
    )


@login_required
def creative_edit(request: HttpRequest, pk: int) -> HttpResponse:
    creative = creative_for(request, pk)
    access.require_write(request.user, creative.advertiser)
    organisations = access.writable(request.user)
    if request.method == "POST":
        form = ConsoleCreativeForm(
            request.POST, request.FILES, instance=creative, organisations=organisations,
            kind=creative.kind,
        )  # fmt: skip
        if _save(request, form) is not None:
            return redirect("console-creative", pk=creative.pk)
    else:
        form = ConsoleCreativeForm(
            instance=creative, organisations=organisations, kind=creative.kind
        )
    return render(
        request,
        "console/creatives/form.html",
        {
            "form": form,
            "creative": creative,
            "kind": creative.kind,
            "fields": form.visible(),
        },
    )


@login_required
@require_POST
def creative_archive(request: HttpRequest, pk: int) -> HttpResponse:
    creative = creative_for(request, pk)
    access.require_write(request.user, creative.advertiser)
    run_move(request, services.archive_creative, creative, "Creative archived.")
    return redirect("console-creative", pk=pk)
