"""Who may see and change what in the console: the API's tenancy and role rules, for views.

Another organisation's objects are 404s (the querysets are scoped with `for_user`, as in the
API); a member whose role does not allow a write gets a 403.
"""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from campaigns.api.permissions import WRITE_ROLES, role_in, writable_organisations
from campaigns.models import Advertiser, Role
from campaigns.organisations import current_organisation, organisations_of

View = Callable[..., HttpResponse]


def role_of(user: Any, organisation: Advertiser) -> str | None:
    """The user's role in the organisation; staff act as its admins."""
    if user.is_staff:
        return Role.ADMIN
    return role_in(user, organisation.pk)


def can_write(user: Any, organisation: Advertiser) -> bool:
    return role_of(user, organisation) in WRITE_ROLES


def is_admin(user: Any, organisation: Advertiser) -> bool:
    return role_of(user, organisation) == Role.ADMIN


def require_write(user: Any, organisation: Advertiser) -> None:
    if not can_write(user, organisation):
        raise PermissionDenied("Your role in this organisation does not allow this.")


def require_admin(user: Any, organisation: Advertiser) -> None:
    if not is_admin(user, organisation):
        raise PermissionDenied("Only the organisation's admins manage members.")


def working_organisation(request: HttpRequest) -> Advertiser | None:
    """The organisation chosen in the header, else the user's first one (None: no member)."""
    return current_organisation(request) or organisations_of(request.user).first()


def writable(user: Any) -> QuerySet[Advertiser]:
    return writable_organisations(user).order_by("name")


def in_organisation_time(view: View) -> View:
    """Log-in required; dates shown and entered in the working organisation's time zone."""

    @login_required
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        organisation = working_organisation(request)
        if organisation is None:
            return view(request, *args, **kwargs)
        with timezone.override(organisation.time_zone):
            return view(request, *args, **kwargs)

    return wrapped
