"""The staff ops page: the serving fleet's requests per second and fill by door, live."""

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from reporting.live.figures import DOORS, FILL_DOORS


@staff_member_required
def ops_page(request: HttpRequest) -> HttpResponse:
    """The numbers arrive over the socket (the last tick's at once, on connecting)."""
    return render(request, "reporting/ops_live.html", {"doors": DOORS, "fill_doors": FILL_DOORS})
