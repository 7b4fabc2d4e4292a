from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.db.models import Prefetch, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from campaigns.models import Campaign, LineItem
from reporting.models import HourlyRollup


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """The advertiser's home: their campaigns and line items with the last day's delivery."""
    campaigns = (
        Campaign.objects.for_user(request.user)
        .select_related("advertiser")
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
        for row in HourlyRollup.objects.for_user(request.user)
        .filter(hour__gte=since)
        .values("line_item_id")
        .annotate(impressions=Sum("impressions"), clicks=Sum("clicks"), spend=Sum("spend"))
    }
    for campaign in campaigns:
        for li in campaign.line_items.all():
            li.delivery = delivery.get(li.pk)
    return render(request, "dashboard/campaigns.html", {"campaigns": campaigns})
