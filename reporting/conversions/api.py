"""The conversions API: the conversions recorded (read-only) and the postback keys.

    GET  /api/v1/conversions/?campaign=&attribution=&event=   paginated, newest first
    GET  /api/v1/conversion-keys/                             the organisation's keys
    POST /api/v1/conversion-keys/                             a new key; its secret, once
    POST /api/v1/conversion-keys/<id>/revoke/                 it signs nothing any more

Scoped to the caller's organisations (staff see all); keys are for organisation admins.
The pseudonym a conversion came with is never shown: it is for data-subject requests.
"""

from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from campaigns.api.permissions import OrganisationRole
from campaigns.api.serializers import OrgScopedField
from campaigns.models import Advertiser, Role
from reporting.conversions.models import Conversion, ConversionKey


def _administered(user: Any) -> QuerySet[Advertiser]:
    if user.is_staff:
        return Advertiser.objects.all()
    return Advertiser.objects.filter(members__user_id=user.pk, members__role=Role.ADMIN)


class ConversionSerializer(serializers.ModelSerializer[Conversion]):
    organisation = serializers.IntegerField(source="advertiser_id", read_only=True)

    class Meta:
        model = Conversion
        fields = [
            "id", "organisation", "event", "value", "currency", "order_id", "converted_at",
            "source", "attribution", "decision_id", "campaign_id", "line_item_id",
            "creative_id", "placement_id", "touched_at", "attributed_value", "recorded_at",
        ]  # fmt: skip
        read_only_fields = fields


class ConversionViewSet(viewsets.ReadOnlyModelViewSet[Conversion]):
    """Conversions of the caller's organisations, with the decision each was credited to."""

    serializer_class = ConversionSerializer
    permission_classes = [permissions.IsAuthenticated]
    filterset_fields = ["campaign_id", "line_item_id", "attribution", "event", "source"]
    ordering_fields = ["converted_at", "value"]
    search_fields = ["order_id"]

    def get_queryset(self) -> QuerySet[Conversion]:
        return Conversion.objects.for_user(self.request.user).order_by("-converted_at", "-pk")


class ConversionKeySerializer(serializers.ModelSerializer[ConversionKey]):
    organisation = OrgScopedField(_administered, source="advertiser")

    class Meta:
        model = ConversionKey
        fields = ["id", "organisation", "name", "key_id", "created_at", "last_used_at",
                  "revoked_at"]  # fmt: skip
        read_only_fields = ["key_id", "created_at", "last_used_at", "revoked_at"]


class ConversionKeyViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet[ConversionKey],
):
    """Postback keys (docs/conversions.md): made and revoked by organisation admins."""

    serializer_class = ConversionKeySerializer
    permission_classes = [permissions.IsAuthenticated, OrganisationRole]
    write_roles = {Role.ADMIN}

    def get_queryset(self) -> QuerySet[ConversionKey]:
        return ConversionKey.objects.filter(advertiser__in=_administered(self.request.user))

    def organisation_of(self, obj: ConversionKey) -> Advertiser:
        return obj.advertiser

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response = super().create(request, *args, **kwargs)
        # The secret is shown this once; store it in your order system's settings.
        key = ConversionKey.objects.get(pk=response.data["id"])
        response.data["secret"] = key.secret
        return response

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        key = self.get_object()
        if key.revoked_at is None:
            key.revoked_at = timezone.now()
            key.save(update_fields=["revoked_at"])
        return Response(self.get_serializer(key).data)
