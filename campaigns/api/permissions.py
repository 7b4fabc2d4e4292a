"""Who may do what in an organisation: analysts read, managers edit, admins also manage members."""

from typing import Any

from rest_framework import permissions
from rest_framework.request import Request

from campaigns.models import Advertiser, Membership, Role

WRITE_ROLES = {Role.ADMIN, Role.MANAGER}


def role_in(user: Any, advertiser_id: int) -> str | None:
    if not user.is_authenticated:
        return None
    return (
        Membership.objects.filter(user_id=user.pk, advertiser_id=advertiser_id)
        .values_list("role", flat=True)
        .first()
    )


def writable_organisations(user: Any) -> Any:
    """Organisations where the user may edit campaigns."""
    if user.is_staff:
        return Advertiser.objects.all()
    return Advertiser.objects.filter(members__user_id=user.pk, members__role__in=list(WRITE_ROLES))


class OrganisationRole(permissions.BasePermission):
    """Reads for any member, writes for the roles the view names (managers by default).

    Views say how to find an object's organisation with `organisation_of(obj)`; objects of
    other organisations never reach here: querysets are already scoped, so they are 404s.
    """

    message = "Your role in this organisation does not allow this."

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        if request.method in permissions.SAFE_METHODS or request.user.is_staff:
            return True
        needed = getattr(view, "write_roles", WRITE_ROLES)
        return role_in(request.user, view.organisation_of(obj).pk) in needed
