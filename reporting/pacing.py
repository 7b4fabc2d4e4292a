"""The pacing report: a campaign's spend today against its schedule, as an SVG chart."""

from decimal import Decimal
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone

from campaigns.models import Campaign
from campaigns.pacing.services import campaign_pacing, spend_against_schedule

WIDTH, HEIGHT = 480, 160


def chart_geometry(data: dict[str, Any], now_fraction: float) -> dict[str, Any]:
    """SVG polylines: the schedule over the whole day, spend over the hours gone by (the
    rollups) and on to now (Redis), on one scale with the day's budget."""
    points = data["points"]
    top = max(
        [data["target"], data["live_spend"], *(p.spend for p in points), Decimal("0.0001")]
    ) * Decimal("1.05")

    def y(value: Decimal) -> str:
        return f"{HEIGHT - float(value / top) * HEIGHT:.1f}"

    def x(hours: float) -> str:
        return f"{hours / 24 * WIDTH:.1f}"

    schedule = [f"0,{HEIGHT}"] + [f"{x(p.hour)},{y(p.schedule)}" for p in points]
    done = max(0, data["elapsed_hours"] - 1)  # hours already over
    spend = [f"0,{HEIGHT}"] + [f"{x(p.hour)},{y(p.spend)}" for p in points[:done]]
    spend.append(f"{x(now_fraction * 24)},{y(data['live_spend'])}")
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "schedule": " ".join(schedule),
        "spend": " ".join(spend),
        "budget_y": y(data["target"]),
        "now_x": x(now_fraction * 24),
        "ticks": [{"x": x(h), "label": f"{h:02d}:00"} for h in range(0, 24, 4)],
    }


@login_required
def pacing_chart(request: HttpRequest, campaign_id: int) -> HttpResponse:
    campaign = get_object_or_404(
        Campaign.objects.for_user(request.user).select_related("advertiser"), pk=campaign_id
    )
    now = timezone.now()
    data = spend_against_schedule(campaign, now)
    schedule = data["schedule"]
    elapsed = (now - schedule.start) / (schedule.end - schedule.start)
    context = {
        "campaign": campaign,
        "state": campaign_pacing(campaign, now),
        "chart": chart_geometry(data, min(1.0, max(0.0, elapsed))),
        "rows": data["points"][: data["elapsed_hours"]],
        # What the rollups have billed so far today (the table's last row).
        "billed": data["points"][data["elapsed_hours"] - 1].spend if data["elapsed_hours"] else 0,
    }
    return render(request, "reporting/pacing.html", context)
