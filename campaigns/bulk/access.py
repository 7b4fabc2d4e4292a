"""Who may use bulksheets: any member exports, admins and managers upload; staff do anything."""

from typing import Any

from django.db.models import QuerySet

from campaigns.models import Advertiser, BulkUpload, Role
from campaigns.models.bulk import BulkUploadQuerySet

WRITE_ROLES = [Role.ADMIN, Role.MANAGER]
MAX_ID = 2**63 - 1  # a larger id in a URL would overflow the database's integer


def organisations(user: Any, *, write: bool) -> QuerySet[Advertiser]:
    """The organisations whose bulksheets the user may export, or with `write`, upload."""
    if not user.is_authenticated:
        return Advertiser.objects.none()
    if user.is_staff:
        return Advertiser.objects.all()
    roles = WRITE_ROLES if write else list(Role)
    return Advertiser.objects.filter(members__user_id=user.pk, members__role__in=roles)


def upload(user: Any, pk: int) -> BulkUpload | None:
    """One upload the user may see, or None; without its file, which only the apply reads."""
    return uploads(user).defer("content").filter(pk=pk).first() if pk <= MAX_ID else None


def uploads(user: Any) -> BulkUploadQuerySet:
    """The uploads the user may see and apply: those of organisations they may upload to."""
    if not user.is_authenticated:
        return BulkUpload.objects.none()
    if user.is_staff:
        return BulkUpload.objects.all()
    return BulkUpload.objects.filter(
        advertiser__members__user_id=user.pk, advertiser__members__role__in=WRITE_ROLES
    )
