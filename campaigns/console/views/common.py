"""What every console view shares: the organisation's clock, the service-call wrapper."""

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.utils.http import url_has_allowed_host_and_scheme

from campaigns.models import Campaign, LineItem
from creatives.models import Creative


def campaign_for(request: HttpRequest, pk: int) -> Campaign:
    """A campaign the user may see; another organisation's is a 404."""
    qs: QuerySet[Campaign] = Campaign.objects.for_user(request.user).select_related("advertiser")
    return get_object_or_404(qs, pk=pk)


def line_item_for(request: HttpRequest, pk: int) -> LineItem:
    qs: QuerySet[LineItem] = LineItem.objects.for_user(request.user).select_related(
        "campaign__advertiser"
    )
    return get_object_or_404(qs, pk=pk)


def creative_for(request: HttpRequest, pk: int) -> Creative:
    qs: QuerySet[Creative] = Creative.objects.for_user(request.user).select_related("advertiser")
    return get_object_or_404(qs, pk=pk)


def run_move(request: HttpRequest, move: Callable[..., Any], obj: Any, done: str) -> bool:
    """Call a state-change service; its refusal becomes the page's error message."""
    try:
        move(obj, by=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return False
    messages.success(request, done)
    return True


def safe_next(request: HttpRequest, default: str) -> str:
    """Where a form asked to go back to, if it is on this site."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return default
