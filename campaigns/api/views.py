"""The integrator API: organisations, members, campaigns, line items, assignments, deals, audit.

Every queryset is scoped to the caller's organisations (staff see all), so another
organisation's objects are 404s. Writes go through `campaigns.services`.
"""

from collections.abc import Callable
from typing import Any, ClassVar

from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from adsplatform.api.concurrency import ETagMixin, IdempotentCreateMixin, expected_version
from campaigns import services
from campaigns.api import serializers as s
from campaigns.api.filters import AuditEntryFilter
from campaigns.api.permissions import OrganisationRole
from campaigns.models import (
    Advertiser,
    AuditEntry,
    Campaign,
    Deal,
    LineItem,
    LineItemCreative,
    Membership,
    Role,
)
from campaigns.organisations import organisations_of
from campaigns.pacing.services import campaign_pacing

PERMISSIONS = [permissions.IsAuthenticated, OrganisationRole]


class StatusActionsMixin:
    """POST /{id}/activate/, /pause/ and /archive/, each calling the service `moves` names."""

    moves: ClassVar[dict[str, Callable[..., Any]]]

    def _move(self, request: Request, name: str) -> Response:
        obj = self.get_object()  # type: ignore[attr-defined]
        self.moves[name](obj, by=request.user)
        return Response(self.get_serializer(obj).data)  # type: ignore[attr-defined]

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def activate(self, request: Request, pk: str | None = None) -> Response:
        return self._move(request, "activate")

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str | None = None) -> Response:
        return self._move(request, "pause")

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def archive(self, request: Request, pk: str | None = None) -> Response:
        return self._move(request, "archive")


class OrgViewSet(IdempotentCreateMixin, ETagMixin, viewsets.ModelViewSet):
    """CRUD on an organisation-scoped model; PATCH/PUT honour If-Match."""

    permission_classes = PERMISSIONS
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def organisation_of(self, obj: Any) -> Advertiser:
        return obj.advertiser

    def get_serializer_context(self) -> dict[str, Any]:
        context = dict(super().get_serializer_context())
        if self.request is not None and self.request.method in ("PATCH", "PUT"):
            context["expected_version"] = expected_version(self.request)
        return context

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(
            {"error": {"status": 405, "code": "method_not_allowed",
                       "message": "Archive instead: billing history is never deleted."}},
            status=status.HTTP_405_METHOD_NOT_ALLOWED,
        )  # fmt: skip


class OrganisationViewSet(ETagMixin, viewsets.ModelViewSet):
    serializer_class = s.OrganisationSerializer
    permission_classes = PERMISSIONS
    write_roles = {Role.ADMIN}
    http_method_names = ["get", "patch", "head", "options"]
    filterset_fields = ["currency"]
    search_fields = ["name"]
    ordering_fields = ["name", "created_at"]

    def get_queryset(self) -> QuerySet[Advertiser]:
        return organisations_of(self.request.user)

    def organisation_of(self, obj: Advertiser) -> Advertiser:
        return obj


class MemberViewSet(viewsets.ModelViewSet):
    serializer_class = s.MemberSerializer
    permission_classes = PERMISSIONS
    write_roles = {Role.ADMIN}
    filterset_fields = ["advertiser", "role"]
    ordering_fields = ["created_at", "role"]

    def get_queryset(self) -> QuerySet[Membership]:
        return (
            Membership.objects.filter(advertiser__in=organisations_of(self.request.user))
            .select_related("user", "advertiser")
            .order_by("id")
        )

    def organisation_of(self, obj: Membership) -> Advertiser:
        return obj.advertiser


class CampaignViewSet(StatusActionsMixin, OrgViewSet):
    serializer_class = s.CampaignSerializer
    moves: ClassVar[dict[str, Callable[..., Any]]] = {
        "activate": services.activate_campaign,
        "pause": services.pause_campaign,
        "archive": services.archive_campaign,
    }
    filterset_fields = ["advertiser", "status", "priority_tier", "pacing_mode"]
    search_fields = ["name"]
    ordering_fields = ["name", "start_at", "daily_budget", "created_at"]

    def get_queryset(self) -> QuerySet[Campaign]:
        return Campaign.objects.for_user(self.request.user).select_related("advertiser")

    @extend_schema(request=None, responses=s.CampaignPacingSerializer)
    @action(detail=True, methods=["get"])
    def pacing(self, request: Request, pk: str | None = None) -> Response:
        """Spend today against the schedule, the pass-through rate and the predicted
        end-of-day spend, per line item too (docs/pacing.md)."""
        campaign = self.get_object()
        state = campaign_pacing(campaign, timezone.now())
        return Response(s.CampaignPacingSerializer(state).data)


class LineItemViewSet(StatusActionsMixin, OrgViewSet):
    serializer_class = s.LineItemSerializer
    moves: ClassVar[dict[str, Callable[..., Any]]] = {
        "activate": services.activate_line_item,
        "pause": services.pause_line_item,
        "archive": services.archive_line_item,
    }
    filterset_fields = ["campaign", "status", "bid_type", "child_safe"]
    search_fields = ["name"]
    ordering_fields = ["name", "bid", "created_at"]

    def get_queryset(self) -> QuerySet[LineItem]:
        return (
            LineItem.objects.for_user(self.request.user)
            .select_related("campaign__advertiser")
            .prefetch_related("placements", "deals", "assignments")
        )

    def organisation_of(self, obj: LineItem) -> Advertiser:
        return obj.campaign.advertiser


class AssignmentViewSet(IdempotentCreateMixin, viewsets.ModelViewSet):
    """Creatives on line items, with rotation weights; DELETE unassigns."""

    serializer_class = s.AssignmentSerializer
    permission_classes = PERMISSIONS
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    filterset_fields = ["line_item", "creative"]
    ordering_fields = ["weight", "id"]

    def get_queryset(self) -> QuerySet[LineItemCreative]:
        return (
            LineItemCreative.objects.for_user(self.request.user)
            .select_related("line_item__campaign__advertiser", "creative")
            .order_by("id")
        )

    def organisation_of(self, obj: LineItemCreative) -> Advertiser:
        return obj.line_item.campaign.advertiser

    def perform_destroy(self, instance: LineItemCreative) -> None:
        services.unassign_creative(instance, by=self.request.user)


class DealViewSet(OrgViewSet):
    serializer_class = s.DealSerializer
    filterset_fields = ["advertiser", "currency"]
    search_fields = ["deal_id", "name"]
    ordering_fields = ["deal_id", "floor", "created_at"]

    def get_queryset(self) -> QuerySet[Deal]:
        return Deal.objects.for_user(self.request.user).select_related("advertiser")


class AuditEntryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The audit log; filter by `object_type` (campaign, lineitem, deal) and `object_id`."""

    serializer_class = s.AuditEntrySerializer
    permission_classes = [permissions.IsAuthenticated]
    filterset_class = AuditEntryFilter
    ordering_fields = ["created_at"]

    def get_queryset(self) -> QuerySet[AuditEntry]:
        qs = AuditEntry.objects.for_user(self.request.user).select_related("actor", "content_type")
        object_type = self.request.query_params.get("object_type")
        if object_type:
            qs = qs.filter(content_type__model=object_type.lower())
        return qs
