"""The bulksheet API: upload (dry run), apply, status, result file and export.

POST bulksheets/                  multipart `file` + `organisation`: the dry run (201)
POST bulksheets/<id>/apply/       queue the apply of a validated upload (202)
GET  bulksheets/<id>/             status and progress
GET  bulksheets/<id>/result/      the result CSV, once applied (or failed on apply)
GET  bulksheets/export/?organisation=<id>   the organisation's objects as a bulksheet
"""

from typing import Any

from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from campaigns.bulk import access
from campaigns.bulk.apply import rows_processed
from campaigns.bulk.export import export_csv
from campaigns.bulk.services import queue_upload, validate_upload
from campaigns.bulk.steps import Plan
from campaigns.models import Advertiser, BulkUpload

# Excel reads a CSV as UTF-8 only when it starts with a byte order mark.
BOM = "\ufeff"

UPLOAD_SCHEMA = inline_serializer(
    "BulksheetUpload",
    {
        "id": serializers.IntegerField(),
        "organisation": serializers.IntegerField(),
        "file_name": serializers.CharField(),
        "status": serializers.CharField(),
        "rows_total": serializers.IntegerField(),
        "rows_processed": serializers.IntegerField(),
        "summary": serializers.DictField(),
        "errors": serializers.ListField(child=serializers.DictField()),
        "result_url": serializers.CharField(allow_null=True),
        "created_at": serializers.DateTimeField(),
        "finished_at": serializers.DateTimeField(allow_null=True),
        "changes": serializers.ListField(child=serializers.DictField(), required=False),
    },
)
ORGANISATION = OpenApiParameter("organisation", int, required=True)


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


def upload_body(upload: BulkUpload, request: Request, plan: Plan | None = None) -> dict[str, Any]:
    result_url = reverse("bulksheet-result", args=[upload.pk]) if upload.result_csv else None
    body: dict[str, Any] = {
        "id": upload.pk,
        "organisation": upload.advertiser_id,
        "file_name": upload.file_name,
        "status": upload.status,
        "rows_total": upload.rows_total,
        "rows_processed": rows_processed(upload),
        "summary": upload.summary,
        "errors": upload.errors,
        "result_url": request.build_absolute_uri(result_url) if result_url else None,
        "created_at": upload.created_at.isoformat(),
        "finished_at": upload.finished_at.isoformat() if upload.finished_at else None,
    }
    if plan is not None:
        body["changes"] = plan.diff()
    return body


def _organisation(user: Any, value: Any, *, write: bool) -> Advertiser:
    text = str(value or "")
    if not (text.isascii() and text.isdigit() and len(text) < 19):
        raise exceptions.ValidationError({"organisation": ["Give the organisation's id."]})
    organisation = access.organisations(user, write=write).filter(pk=int(text)).first()
    if organisation is not None:
        return organisation
    if write and access.organisations(user, write=False).filter(pk=int(text)).exists():
        raise exceptions.PermissionDenied("Only admins and managers can upload bulksheets.")
    # Another organisation's id reads as unknown, like one that does not exist.
    raise exceptions.ValidationError({"organisation": ["Unknown organisation."]})


def csv_download(text: str, filename: str) -> HttpResponse:
    response = HttpResponse(BOM + text, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class BulksheetUploadView(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={
            "multipart/form-data": inline_serializer(
                "BulksheetFile",
                {"file": serializers.FileField(), "organisation": serializers.IntegerField()},
            )
        },
        responses={201: UPLOAD_SCHEMA},
        summary="Upload a bulksheet: the dry run (status validated or failed, with the diff)",
    )
    def post(self, request: Request) -> Response:
        file = request.FILES.get("file")
        if file is None:
            raise exceptions.ValidationError({"file": ["Attach the bulksheet as `file`."]})
        organisation = _organisation(request.user, request.POST.get("organisation"), write=True)
        upload, plan = validate_upload(advertiser=organisation, file=file, by=request.user)
        return Response(upload_body(upload, request, plan), status=status.HTTP_201_CREATED)


def _upload(request: Request, pk: int) -> BulkUpload:
    upload = access.upload(request.user, pk)
    if upload is None:
        raise exceptions.NotFound()
    return upload


class BulksheetDetailView(APIView):
    @extend_schema(responses={200: UPLOAD_SCHEMA}, summary="A bulksheet upload's status")
    def get(self, request: Request, pk: int) -> Response:
        return Response(upload_body(_upload(request, pk), request))


class BulksheetApplyView(APIView):
    @extend_schema(request=None, responses={202: UPLOAD_SCHEMA}, summary="Apply a validated upload")
    def post(self, request: Request, pk: int) -> Response:
        upload = _upload(request, pk)
        if not queue_upload(upload, by=request.user):
            message = f"Only a validated upload can be applied; this one is {upload.status}."
            raise Conflict(message)
        return Response(upload_body(upload, request), status=status.HTTP_202_ACCEPTED)


class BulksheetResultView(APIView):
    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.STR}, summary="The result file")
    def get(self, request: Request, pk: int) -> HttpResponse:
        upload = access.upload(request.user, pk)
        if upload is None or not upload.result_csv:
            raise exceptions.NotFound()
        return csv_download(upload.result_csv, f"bulksheet-{pk}-result.csv")


class BulksheetExportView(APIView):
    @extend_schema(
        parameters=[ORGANISATION],
        responses={(200, "text/csv"): OpenApiTypes.STR},
        summary="An organisation's campaigns, line items and assignments as a bulksheet",
    )
    def get(self, request: Request) -> HttpResponse:
        organisation = _organisation(
            request.user, request.query_params.get("organisation"), write=False
        )
        return csv_download(export_csv(organisation), f"bulksheet-{organisation.pk}.csv")
