"""Campaigns in the console: the list, the create flow's first step, edit, state changes."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from campaigns import services
from campaigns.console import access, delivery
from campaigns.console.forms import (
    CampaignForm,
    NewCampaignForm,
    add_service_errors,
    default_campaign,
)
from campaigns.console.summary import targeting_summary
from campaigns.console.views.common import campaign_for, run_move, safe_next
from campaigns.console.views.creatives import rejected_notice
from campaigns.models import AuditEntry, Campaign, CampaignStatus
from campaigns.organisations import current_organisation
from campaigns.services import StaleVersion
from reporting.live.figures import campaign_fields

PAGE_SIZE = 25
SORTS = {
    "name": "name", "-name": "-name", "start": "start_at", "-start": "-start_at",
    "budget": "daily_budget", "-budget": "-daily_budget", "status": "status",
    "-status": "-status", "created": "created_at", "-created": "-created_at",
}  # fmt: skip
MOVES = {
    "activate": (services.activate_campaign, "Campaign activated."),
    "pause": (services.pause_campaign, "Campaign paused."),
    "resume": (services.activate_campaign, "Campaign resumed."),
    "archive": (services.archive_campaign, "Campaign archived."),
}


def listed_campaigns(request: HttpRequest) -> QuerySet[Campaign]:
    """The campaigns of the organisation in the header (all of the user's without one)."""
    campaigns = Campaign.objects.for_user(request.user)
    organisation = current_organisation(request)
    if organisation is not None:
        campaigns = campaigns.filter(advertiser=organisation)
    return campaigns


@login_required
def campaign_list(request: HttpRequest) -> HttpResponse:
    """Campaigns with delivery status, spend today and lifetime, pace; sort, filter, search."""
    campaigns = listed_campaigns(request)
    status = request.GET.get("status", "")
    if status in CampaignStatus.values:
        campaigns = campaigns.filter(status=status)
    elif status != "all":
        status = ""
        campaigns = campaigns.exclude(status=CampaignStatus.ARCHIVED)
    query = request.GET.get("q", "").strip()[:100]
    if query:
        named = Q(name__icontains=query) | Q(line_items__name__icontains=query)
        campaigns = campaigns.filter(named).distinct()
    sort = request.GET.get("sort", "-created")
    campaigns = campaigns.order_by(SORTS.get(sort, "-created_at"), "-id")
    page = Paginator(campaigns, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = list(
        page.object_list.select_related("advertiser").prefetch_related(  # type: ignore[attr-defined]
            delivery.line_items_prefetch()
        )
    )
    now = timezone.now()
    states = delivery.campaign_states(rows, now)
    organisation = access.working_organisation(request)
    context = {
        "rows": [(c, states[c.pk]) for c in rows],
        "page": page,
        "status": status,
        "statuses": CampaignStatus.choices,
        "query": query,
        "sort": sort,
        "can_create": access.writable(request.user).exists(),
        "multi_org": len({c.advertiser_id for c in rows}) > 1,
        "organisation": organisation,
        "rejected": rejected_notice(request),
    }
    return render(request, "console/campaigns/list.html", context)


@login_required
def campaign_create(request: HttpRequest) -> HttpResponse:
    """Step 1 of 3: the campaign's settings. It is saved as a draft; step 2 adds a line item."""
    organisations = access.writable(request.user)
    working = access.working_organisation(request)
    chosen = request.POST.get("organisation", "")
    organisation = (organisations.filter(pk=int(chosen)).first() if chosen.isdigit() else None) or (
        working if working in organisations else organisations.first()
    )
    if organisation is None:
        raise PermissionDenied("Your role does not allow creating campaigns.")
    # Dates are typed and shown in the organisation's time zone.
    with timezone.override(organisation.time_zone):
        if request.method == "POST":
            form = NewCampaignForm(request.POST, organisations=organisations)
            if form.is_valid():
                data = dict(form.cleaned_data)
                data.pop("organisation")
                try:
                    with transaction.atomic():
                        campaign = services.create_campaign(
                            advertiser=organisation, by=request.user, **data
                        )
                except ValidationError as exc:
                    add_service_errors(form, exc)
                else:
                    return redirect(
                        reverse("console-line-item-create", args=[campaign.pk]) + "?step=2"
                    )
        else:
            form = NewCampaignForm(
                initial=default_campaign(timezone.localtime(), organisation),
                organisations=organisations,
            )
        context = {"form": form, "step": 1, "zone": organisation.time_zone}
        return render(request, "console/campaigns/form.html", context)


@login_required
def campaign_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A campaign: settings, state, line items with their targeting in words, history."""
    campaign = campaign_for(request, pk)
    rows = list(
        Campaign.objects.filter(pk=campaign.pk)
        .select_related("advertiser")
        .prefetch_related(delivery.line_items_prefetch(full=True))
    )
    campaign = rows[0]
    inventory = delivery.active_inventory()
    now = timezone.now()
    state = delivery.campaign_states(rows, now, inventory)[campaign.pk]
    line_items = [
        {
            "obj": li,
            "delivery": delivery.line_item_delivery(li, inventory)
            if li.status == "active"
            else li.get_status_display(),
            "summary": targeting_summary(li),
        }
        for li in campaign.line_items.all()
    ]
    history = (
        AuditEntry.objects.for_object(campaign).select_related("actor").order_by("-created_at")[:20]
    )
    with timezone.override(campaign.advertiser.time_zone):
        return render(
            request,
            "console/campaigns/detail.html",
            {
                "campaign": campaign,
                "state": state,
                # The same numbers the live feed updates (reporting.live), formatted alike.
                "live": campaign_fields(campaign, state, now),
                "line_items": line_items,
                "history": list(history),
                "can_write": access.can_write(request.user, campaign.advertiser),
            },
        )


@login_required
def campaign_edit(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = campaign_for(request, pk)
    access.require_write(request.user, campaign.advertiser)
    with timezone.override(campaign.advertiser.time_zone):
        if request.method == "POST":
            form = CampaignForm(request.POST, instance=Campaign.objects.get(pk=campaign.pk))
            version = request.POST.get("version", "")
            if form.is_valid():
                changed = {name: form.cleaned_data[name] for name in form.changed_data}
                try:
                    with transaction.atomic():
                        services.update_campaign(
                            campaign,
                            by=request.user,
                            expected_version=int(version) if version.isdigit() else None,
                            **changed,
                        )
                except StaleVersion:
                    form.add_error(
                        None,
                        "Someone changed this campaign while you edited it; reload to see "
                        "their change.",
                    )
                except ValidationError as exc:
                    add_service_errors(form, exc)
                else:
                    return redirect("console-campaign", pk=campaign.pk)
        else:
            form = CampaignForm(instance=campaign)
        return render(
            request,
            "console/campaigns/form.html",
            {"form": form, "campaign": campaign, "zone": campaign.advertiser.time_zone},
        )


@login_required
@require_POST
def campaign_move(request: HttpRequest, pk: int, move: str) -> HttpResponse:
    """Activate, pause, resume or archive (never delete), through the API's services."""
    campaign = campaign_for(request, pk)
    access.require_write(request.user, campaign.advertiser)
    if move not in MOVES:
        return redirect("console-campaign", pk=pk)
    service, done = MOVES[move]
    run_move(request, service, campaign, done)
    return redirect(safe_next(request, reverse("console-campaign", args=[pk])))
