"""The data-subject request API, staff only, under /api/v1/:

POST data-subject-requests/                 file one: kind, subject_kind, subject_id (201)
GET  data-subject-requests/                 list (paginated; filter kind, status, subject_kind)
GET  data-subject-requests/<id>/            status, progress and counts
GET  data-subject-requests/<id>/export/     an access request's JSON export
POST data-subject-requests/<id>/run-again/  queue a failed request again (202)

The subject id is read, turned into pseudonyms and forgotten: no answer echoes it, and it is
hidden from error reports. `Idempotency-Key` is deliberately not honoured here: honouring it
keeps a hash of the request body, id included, for a day.
"""

from typing import Any

from django.http import HttpResponse
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from compliance import services
from compliance.admin import export_download
from compliance.dsar import progress
from compliance.models import DataSubjectRequest, RequestKind, RequestStatus, SubjectKind


class Gone(exceptions.APIException):
    status_code = status.HTTP_410_GONE
    default_code = "gone"


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class FileRequestSerializer(serializers.Serializer[DataSubjectRequest]):
    kind = serializers.ChoiceField(choices=RequestKind.choices)
    subject_kind = serializers.ChoiceField(choices=SubjectKind.choices, default=SubjectKind.USER_ID)
    subject_id = serializers.CharField(write_only=True, max_length=services.MAX_ID_LENGTH)
    notes = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class DataSubjectRequestSerializer(serializers.ModelSerializer[DataSubjectRequest]):
    requested_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    entries_scanned = serializers.SerializerMethodField()
    entries_total = serializers.SerializerMethodField()
    export_url = serializers.SerializerMethodField()

    class Meta:
        model = DataSubjectRequest
        fields = [
            "id", "kind", "subject_kind", "fingerprint", "status", "entries_scanned",
            "entries_total", "counts", "export_url", "error", "notes", "requested_by",
            "requested_at", "started_at", "finished_at", "window_start", "window_end",
        ]  # fmt: skip
        read_only_fields = fields

    def _progress(self, obj: DataSubjectRequest) -> tuple[int, int]:
        # Two fields, one Redis read: remembered per object for this serializer.
        if getattr(self, "_progress_of", None) != obj.pk:
            self._progress_of, self._progress_value = obj.pk, progress(obj)
        return self._progress_value

    def get_entries_scanned(self, obj: DataSubjectRequest) -> int:
        return self._progress(obj)[0]

    def get_entries_total(self, obj: DataSubjectRequest) -> int:
        return self._progress(obj)[1]

    def get_export_url(self, obj: DataSubjectRequest) -> str | None:
        if obj.kind != RequestKind.ACCESS or obj.status != RequestStatus.DONE:
            return None
        url = reverse("datasubjectrequest-export", args=[obj.pk])
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url


@method_decorator(sensitive_post_parameters("subject_id"), name="dispatch")
class DataSubjectRequestViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet[DataSubjectRequest],
):
    """Access and erasure requests; staff only."""

    permission_classes = [permissions.IsAuthenticated, permissions.IsAdminUser]
    serializer_class = DataSubjectRequestSerializer
    filterset_fields = ["kind", "status", "subject_kind"]
    search_fields = ["fingerprint"]
    ordering_fields = ["requested_at", "finished_at"]

    def get_queryset(self) -> Any:
        queryset = DataSubjectRequest.objects.recent()
        # Exports can be large: only the export action reads them.
        return queryset if self.action == "export" else queryset.defer("export")

    @extend_schema(
        request=FileRequestSerializer,
        responses={201: DataSubjectRequestSerializer},
        summary="File an access or erasure request; its job starts at once",
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        given = FileRequestSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        filed = services.file_request(by=request.user, **given.validated_data)
        body = self.get_serializer(filed).data
        location = reverse("datasubjectrequest-detail", args=[filed.pk])
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": location})

    @extend_schema(
        responses={(200, "application/json"): OpenApiTypes.OBJECT},
        summary="An access request's export (everything held for the subject)",
    )
    @action(detail=True, methods=["get"])
    def export(self, request: Request, pk: str | None = None) -> HttpResponse:
        obj = self.get_object()
        if obj.kind != RequestKind.ACCESS or obj.status != RequestStatus.DONE:
            raise exceptions.NotFound("Only a finished access request has an export.")
        if not obj.export:
            raise Gone("The export was deleted after the retention period; file a new request.")
        return export_download(obj)

    @extend_schema(request=None, responses={202: DataSubjectRequestSerializer})
    @action(detail=True, methods=["post"], url_path="run-again")
    def run_again(self, request: Request, pk: str | None = None) -> Response:
        obj = self.get_object()
        if not services.run_again(obj):
            raise Conflict(f"Only a failed request runs again; this one is {obj.status}.")
        return Response(self.get_serializer(obj).data, status=status.HTTP_202_ACCEPTED)
