from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from campaigns.models import ApiToken, Campaign, LineItem
from campaigns.organisations import current_organisation, switch_organisation
from reporting.models import HourlyRollup


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """The advertiser's home: their campaigns and line items with the last day's delivery."""
    org = current_organisation(request)
    rows = HourlyRollup.objects.for_user(request.user)
    campaigns = Campaign.objects.for_user(request.user)
    if org is not None:
        campaigns = campaigns.filter(advertiser=org)
        rows = rows.filter(advertiser_id=org.pk)
    campaigns = (
        campaigns.select_related("advertiser")
        .prefetch_related(
            Prefetch(
                "line_items",
                queryset=LineItem.objects.order_by("name").prefetch_related("creatives"),
            )
        )
        .order_by("advertiser__name", "name")
    )
    since = timezone.now() - timedelta(hours=24)
    delivery = {
        row["line_item_id"]: row
        for row in rows.filter(hour__gte=since)
        .values("line_item_id")
        .annotate(impressions=Sum("impressions"), clicks=Sum("clicks"), spend=Sum("spend"))
    }
    for campaign in campaigns:
        for li in campaign.line_items.all():
            li.delivery = delivery.get(li.pk)
    return render(request, "dashboard/campaigns.html", {"campaigns": campaigns})


@login_required
def tokens_page(request: HttpRequest) -> HttpResponse:
    """Create and revoke the user's API tokens; a new key is shown once."""
    new_key = None
    if request.method == "POST":
        if "revoke" in request.POST:
            ApiToken.objects.filter(
                user_id=int(request.user.pk or 0), pk=request.POST["revoke"]
            ).update(revoked_at=timezone.now())
            messages.success(request, "Token revoked.")
            return redirect("tokens")
        name = request.POST.get("name", "").strip()[:100]
        if not name:
            messages.error(request, "Give the token a name.")
        else:
            _, new_key = ApiToken.issue(request.user, name)
    tokens = ApiToken.objects.filter(user_id=int(request.user.pk or 0)).order_by("-created_at")
    return render(request, "dashboard/tokens.html", {"tokens": tokens, "new_key": new_key})


@login_required
@require_POST
def switch_organisation_view(request: HttpRequest) -> HttpResponse:
    """Choose the organisation the dashboard shows ("" for all of the user's)."""
    raw = request.POST.get("organisation", "")
    if not switch_organisation(request, int(raw) if raw.isdigit() else None):
        messages.error(request, "You are not a member of that organisation.")
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = "/"
    return redirect(target)
