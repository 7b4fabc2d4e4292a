"""The creative API: upload (multipart), list, edit (back to review), archive and review.

Querysets are scoped to the caller's organisations (staff see all), so another
organisation's creatives are 404s; approve and reject are for ad-ops staff.
"""

from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import parsers, permissions, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from adsplatform.api.errors import error_body
from campaigns.api.views import OrgViewSet
from creatives import services
from creatives.api.serializers import CreativeSerializer, RejectSerializer
from creatives.models import Creative
from creatives.units import weight


class IsReviewer(permissions.BasePermission):
    message = "Only ad-ops staff review creatives."

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.is_staff)


class CreativeViewSet(OrgViewSet):
    """Creatives of every kind. Upload files as multipart/form-data; any edit sends the
    creative back to review, and only approved creatives serve."""

    serializer_class = CreativeSerializer
    parser_classes = [parsers.MultiPartParser, parsers.FormParser, parsers.JSONParser]
    filterset_fields = {
        "advertiser": ["exact"], "kind": ["exact"], "status": ["exact"],
        "archived_at": ["isnull"],
    }  # fmt: skip
    search_fields = ["name"]
    ordering_fields = ["name", "status", "created_at", "updated_at"]

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # The Idempotency-Key's fingerprint is the whole body, held in memory: not for videos.
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        size = int(request.META.get("CONTENT_LENGTH") or 0)
        if request.headers.get("Idempotency-Key") and limit is not None and size > limit:
            return Response(
                error_body(
                    400, "invalid",
                    f"An Idempotency-Key is honoured for uploads up to {weight(limit)}; send "
                    "this one without it.",
                ),
                status=status.HTTP_400_BAD_REQUEST,
            )  # fmt: skip
        return super().create(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Creative]:
        return (
            Creative.objects.for_user(self.request.user)
            .select_related("advertiser", "reviewed_by")
            .prefetch_related("renditions")
        )

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(
            error_body(405, "method_not_allowed",
                       "Archive instead: creatives with delivery history are never deleted."),
            status=status.HTTP_405_METHOD_NOT_ALLOWED,
        )  # fmt: skip

    def _answer(self, creative: Creative) -> Response:
        return Response(self.get_serializer(creative).data)

    @extend_schema(request=None, responses=CreativeSerializer)
    @action(detail=True, methods=["post"])
    def archive(self, request: Request, pk: str | None = None) -> Response:
        """Retire the creative: it never serves again."""
        return self._answer(services.archive_creative(self.get_object(), by=request.user))

    @extend_schema(request=None, responses=CreativeSerializer)
    @action(detail=True, methods=["post"], permission_classes=[IsReviewer])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        """Ad-ops staff: let the creative serve (refused while an automatic check fails)."""
        return self._answer(services.approve_creative(self.get_object(), by=request.user))

    @extend_schema(request=RejectSerializer, responses=CreativeSerializer)
    @action(detail=True, methods=["post"], permission_classes=[IsReviewer])
    def reject(self, request: Request, pk: str | None = None) -> Response:
        """Ad-ops staff: stop the creative serving, with the reason the advertiser sees."""
        body = RejectSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        creative = services.reject_creative(
            self.get_object(), by=request.user, reason=body.validated_data["reason"]
        )
        return self._answer(creative)
