"""Line items in the console: step 2 of the create flow, the page with the targeting in
words, edit, state changes, and the creatives shown with their weights (step 3)."""

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from campaigns import services
from campaigns.console import access, choices, delivery
from campaigns.console.forms import (
    LineItemForm,
    add_service_errors,
    daypart_grid,
    default_line_item,
)
from campaigns.console.summary import targeting_summary
from campaigns.console.views.common import campaign_for, line_item_for, run_move, safe_next
from campaigns.models import AuditEntry, LineItemCreative
from campaigns.services import StaleVersion
from creatives.models import Creative

MOVES = {
    "activate": (services.activate_line_item, "Line item activated."),
    "pause": (services.pause_line_item, "Line item paused."),
    "archive": (services.archive_line_item, "Line item archived."),
}
MAX_WEIGHT = 100


def _grid(form: LineItemForm) -> dict[str, Any]:
    return {"grid": daypart_grid(form), "hours": [f"{h:02d}" for h in range(24)]}


@login_required
def line_item_create(request: HttpRequest, campaign_pk: int) -> HttpResponse:
    """A new line item on a campaign (step 2 of 3 in the create flow)."""
    campaign = campaign_for(request, campaign_pk)
    access.require_write(request.user, campaign.advertiser)
    inventory = delivery.active_inventory()
    step = 2 if request.GET.get("step") == "2" else None
    with timezone.override(campaign.advertiser.time_zone):
        if request.method == "POST":
            form = LineItemForm(request.POST, inventory=inventory)
            if form.is_valid():
                try:
                    with transaction.atomic():
                        line_item = services.create_line_item(
                            campaign=campaign, by=request.user, **form.values()
                        )
                except ValidationError as exc:
                    add_service_errors(form, exc)
                else:
                    url = reverse("console-line-item-creatives", args=[line_item.pk])
                    return redirect(url + ("?step=3" if step else ""))
        else:
            form = LineItemForm(initial=default_line_item(campaign, inventory), inventory=inventory)
        return render(
            request,
            "console/line_items/form.html",
            {"form": form, "campaign": campaign, "step": step, **_grid(form)},
        )


@login_required
def line_item_detail(request: HttpRequest, pk: int) -> HttpResponse:
    line_item = line_item_for(request, pk)
    inventory = delivery.active_inventory()
    assignments = list(
        line_item.assignments.select_related("creative").order_by("creative__name", "id")
    )
    history = AuditEntry.objects.for_object(line_item).select_related("actor")[:20]
    with timezone.override(line_item.campaign.advertiser.time_zone):
        return render(
            request,
            "console/line_items/detail.html",
            {
                "li": line_item,
                "campaign": line_item.campaign,
                "summary": targeting_summary(line_item),
                "delivery": delivery.line_item_delivery(line_item, inventory)
                if line_item.status == "active"
                else line_item.get_status_display(),
                "assignments": assignments,
                "history": list(history),
                "can_write": access.can_write(request.user, line_item.campaign.advertiser),
            },
        )


@login_required
def line_item_edit(request: HttpRequest, pk: int) -> HttpResponse:
    line_item = line_item_for(request, pk)
    access.require_write(request.user, line_item.campaign.advertiser)
    inventory = delivery.active_inventory()
    with timezone.override(line_item.campaign.advertiser.time_zone):
        if request.method == "POST":
            form = LineItemForm(request.POST, inventory=inventory)
            version = request.POST.get("version", "")
            if form.is_valid():
                values = form.values()
                placements = values.pop("placements")
                try:
                    with transaction.atomic():
                        services.update_line_item(
                            line_item,
                            by=request.user,
                            expected_version=int(version) if version.isdigit() else None,
                            **values,
                        )
                        line_item.placements.set(placements)
                except StaleVersion:
                    form.add_error(
                        None, "Someone changed this line item meanwhile; reload to see it."
                    )
                except ValidationError as exc:
                    add_service_errors(form, exc)
                else:
                    return redirect("console-line-item", pk=line_item.pk)
        else:
            form = LineItemForm(inventory=inventory, line_item=line_item)
        return render(
            request,
            "console/line_items/form.html",
            {
                "form": form,
                "campaign": line_item.campaign,
                "li": line_item,
                **_grid(form),
            },
        )


@login_required
@require_POST
def line_item_move(request: HttpRequest, pk: int, move: str) -> HttpResponse:
    line_item = line_item_for(request, pk)
    access.require_write(request.user, line_item.campaign.advertiser)
    if move in MOVES:
        service, done = MOVES[move]
        run_move(request, service, line_item, done)
    return redirect(safe_next(request, reverse("console-line-item", args=[pk])))


def _weight(text: str) -> int | None:
    return int(text) if text.isdigit() and 1 <= int(text) <= MAX_WEIGHT else None


@login_required
def line_item_creatives(request: HttpRequest, pk: int) -> HttpResponse:
    """Which of the organisation's creatives the line item shows, and how often (weights)."""
    line_item = line_item_for(request, pk)
    organisation = line_item.campaign.advertiser
    step = 3 if request.GET.get("step") == "3" else None
    library = list(
        Creative.objects.filter(advertiser=organisation, archived_at__isnull=True).order_by(
            "name", "id"
        )
    )
    assigned = {
        a.creative_id: a
        for a in LineItemCreative.objects.filter(line_item=line_item).select_related("creative")
    }
    if request.method == "POST":
        access.require_write(request.user, organisation)
        by_id = {c.pk: c for c in library}
        errors = []
        with transaction.atomic():
            for creative_id, creative in by_id.items():
                ticked = request.POST.get(f"use-{creative_id}") == "on"
                weight = _weight(request.POST.get(f"weight-{creative_id}", "1"))
                if ticked and weight is None:
                    errors.append(f"{creative.name}: the weight is a whole number 1 to 100.")
                elif ticked and weight is not None:
                    services.assign_creative(line_item, creative, weight=weight, by=request.user)
                elif creative_id in assigned:
                    services.unassign_creative(assigned[creative_id], by=request.user)
            if errors:
                transaction.set_rollback(True)
        if not errors:
            messages.success(request, "Creatives saved.")
            return redirect(
                reverse("console-campaign", args=[line_item.campaign_id])
                if step
                else reverse("console-line-item", args=[line_item.pk])
            )
        for error in errors:
            messages.error(request, error)
    rows = [
        {
            "creative": c,
            "assignment": assigned.get(c.pk),
            "fits": c.serving_format != "banner" or c.size in line_item.sizes,
        }
        for c in library
    ]
    return render(
        request,
        "console/line_items/creatives.html",
        {
            "li": line_item,
            "campaign": line_item.campaign,
            "rows": rows,
            "step": step,
            "can_write": access.can_write(request.user, organisation),
        },
    )


@login_required
def regions(request: HttpRequest) -> JsonResponse:
    """The regions of some countries, for the region picker's script."""
    codes = [c for c in request.GET.getlist("country") if c in choices.country_names()][:50]
    return JsonResponse({"regions": choices.regions_of(codes)})
