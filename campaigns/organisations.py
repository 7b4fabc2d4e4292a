"""Which organisation a dashboard user is working in (a user may belong to several)."""

from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest

from campaigns.models import Advertiser

SESSION_KEY = "organisation_id"


def organisations_of(user: Any) -> QuerySet[Advertiser]:
    """Organisations the user may open: their memberships, or all for staff."""
    qs = Advertiser.objects.order_by("name")
    if user.is_staff:
        return qs
    if not user.is_authenticated:
        return qs.none()
    return qs.filter(members__user_id=user.pk)


def current_organisation(request: HttpRequest) -> Advertiser | None:
    """The organisation chosen in this session; None means all of the user's."""
    chosen = request.session.get(SESSION_KEY)
    if chosen is None:
        return None
    return organisations_of(request.user).filter(pk=chosen).first()


def switch_organisation(request: HttpRequest, organisation_id: int | None) -> bool:
    """Work in one organisation (or all with None); False if the user is not a member."""
    if organisation_id is None:
        request.session.pop(SESSION_KEY, None)
        return True
    if not organisations_of(request.user).filter(pk=organisation_id).exists():
        return False
    request.session[SESSION_KEY] = organisation_id
    return True


def organisation_context(request: HttpRequest) -> dict[str, Any]:
    """Template context: the organisations for the header's switcher."""
    if not request.user.is_authenticated:
        return {}
    return {
        "organisations": list(organisations_of(request.user)[:50]),
        "current_organisation": current_organisation(request),
    }
