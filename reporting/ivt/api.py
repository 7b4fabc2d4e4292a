"""`GET /api/v1/reports/ivt/`: invalid traffic per placement, line item and reason over a
period, with the billed traffic beside it and the IVT rate."""

from collections import defaultdict
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet, Sum
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from reporting.ivt.models import IvtHourly, IvtReason
from reporting.models import HourlyRollup
from reporting.views import _filtered

Pair = tuple[int, int]


def _rate(invalid: int, billed: int) -> float | None:
    return round(invalid / (invalid + billed), 6) if invalid + billed else None


class IvtReportRow(serializers.Serializer[dict[str, Any]]):
    placement_id = serializers.IntegerField()
    line_item_id = serializers.IntegerField()
    reason = serializers.ChoiceField(choices=IvtReason.choices)
    currency = serializers.CharField()
    invalid_impressions = serializers.IntegerField()
    invalid_clicks = serializers.IntegerField()
    flagged_impressions = serializers.IntegerField()
    flagged_clicks = serializers.IntegerField()
    withheld = serializers.DecimalField(max_digits=18, decimal_places=9, coerce_to_string=True)
    billed_impressions = serializers.IntegerField()
    billed_clicks = serializers.IntegerField()
    # Every reason's invalid impressions (clicks) of the placement and line item, over them
    # plus the billed ones; null with no traffic.
    impression_ivt_rate = serializers.FloatField(allow_null=True)
    click_ivt_rate = serializers.FloatField(allow_null=True)


class IvtReportView(APIView):
    """Invalid and flagged impressions and clicks the caller may see, summed per placement,
    line item and reason over `since`..`until`, with the billed ones and the IVT rate.

    Filters: `since`, `until` (ISO 8601, hour starts), `campaign`, `line_item`, `placement`,
    `reason`. Paginated (`page`), most invalid impressions first.
    """

    pagination_class = PageNumberPagination

    @extend_schema(
        parameters=[
            OpenApiParameter("since", str),
            OpenApiParameter("until", str),
            OpenApiParameter("campaign", int),
            OpenApiParameter("line_item", int),
            OpenApiParameter("placement", int),
            OpenApiParameter("reason", str, enum=IvtReason.values),
            OpenApiParameter("page", int),
        ],
        responses=inline_serializer(
            "IvtReport",
            {
                "count": serializers.IntegerField(),
                "next": serializers.URLField(allow_null=True),
                "previous": serializers.URLField(allow_null=True),
                "results": IvtReportRow(many=True),
            },
        ),
    )
    def get(self, request: Request) -> Response:
        ivt = self._rows(IvtHourly.objects.for_user(request.user), request)
        groups = (
            ivt.values("placement_id", "line_item_id", "reason", "currency")
            .annotate(
                invalid_impressions=Sum("impressions"),
                invalid_clicks=Sum("clicks"),
                flagged_impressions=Sum("flagged_impressions"),
                flagged_clicks=Sum("flagged_clicks"),
                withheld=Sum("withheld"),
            )
            .order_by("-invalid_impressions", "-invalid_clicks", "placement_id", "line_item_id")
        )
        paginator = PageNumberPagination()
        page: list[dict[str, Any]] = (
            paginator.paginate_queryset(groups, request, view=self)  # type: ignore[arg-type]
            or []
        )
        pairs = {(r["placement_id"], r["line_item_id"]) for r in page}
        billed = self._billed(request, pairs)
        invalid = self._invalid(ivt, pairs)
        for row in page:
            pair = (row["placement_id"], row["line_item_id"])
            imps, clicks = billed.get(pair, (0, 0))
            all_imps, all_clicks = invalid[pair]
            row.update(
                billed_impressions=imps,
                billed_clicks=clicks,
                withheld=row["withheld"] or Decimal(0),
                impression_ivt_rate=_rate(all_imps, imps),
                click_ivt_rate=_rate(all_clicks, clicks),
            )
        rows = IvtReportRow(page, many=True)  # type: ignore[arg-type]
        return paginator.get_paginated_response(rows.data)

    def _rows(self, rows: QuerySet[IvtHourly], request: Request) -> QuerySet[IvtHourly]:
        rows = _filtered(rows, request)
        placement = request.query_params.get("placement")
        if placement is not None:
            if not placement.isdigit():
                raise ValidationError({"placement": f"{placement!r} is not an id."})
            rows = rows.filter(placement_id=int(placement))
        reason = request.query_params.get("reason")
        if reason is not None:
            if reason not in IvtReason.values:
                raise ValidationError({"reason": f"{reason!r} is not one of {IvtReason.values}."})
            rows = rows.filter(reason=reason)
        return rows

    def _billed(self, request: Request, pairs: set[Pair]) -> dict[Pair, tuple[int, int]]:
        if not pairs:
            return {}
        rows = _filtered(HourlyRollup.objects.for_user(request.user), request).filter(
            placement_id__in={p for p, _ in pairs}, line_item_id__in={li for _, li in pairs}
        )
        sums = rows.values("placement_id", "line_item_id").annotate(
            imps=Sum("impressions"), clicks=Sum("clicks")
        )
        return {(r["placement_id"], r["line_item_id"]): (r["imps"], r["clicks"]) for r in sums}

    def _invalid(self, rows: QuerySet[IvtHourly], pairs: set[Pair]) -> dict[Pair, tuple[int, int]]:
        found: dict[Pair, tuple[int, int]] = defaultdict(lambda: (0, 0))
        if not pairs:
            return found
        sums = (
            rows.filter(
                placement_id__in={p for p, _ in pairs}, line_item_id__in={li for _, li in pairs}
            )
            .values("placement_id", "line_item_id")
            .annotate(imps=Sum("impressions"), clicks=Sum("clicks"))
        )
        for r in sums:
            found[(r["placement_id"], r["line_item_id"])] = (r["imps"], r["clicks"])
        return found
