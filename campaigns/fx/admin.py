"""FX rate sets in the admin: each loaded day, its age, and which table serving uses now."""

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from campaigns.fx.services import FROM_FEED, current_fx_table
from campaigns.models import FxRateSet


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    hours = seconds / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


@admin.register(FxRateSet)
class FxRateSetAdmin(admin.ModelAdmin):
    list_display = ["rates_date", "age", "currencies", "source", "checked_at"]
    readonly_fields = ["rates_date", "age", "source", "fetched_at", "checked_at", "rate_table"]
    exclude = ["rates"]

    # Sets are written only by the refresh job: the admin looks, it does not edit.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        table = current_fx_table()
        if table.origin == FROM_FEED:
            level, text = (
                messages.INFO,
                (
                    f"Serving uses the reference rates of {table.newest.rates_date}"  # type: ignore[union-attr]
                    f" ({_age(table.age_seconds)} old)."
                ),
            )
        elif table.newest is None:
            level, text = (
                messages.WARNING,
                (
                    "No reference rates loaded"
                    + ("" if settings.FX_SOURCE else " (FX_SOURCE is not set)")
                    + ": serving uses the FX_RATES constants."
                ),
            )
        else:
            level, text = (
                messages.WARNING,
                (
                    f"The newest reference rates are {_age(table.age_seconds)} old, past "
                    f"FX_MAX_AGE_SECONDS: serving uses the FX_RATES constants."
                ),
            )
        self.message_user(request, text, level)
        return super().changelist_view(request, extra_context)

    def get_list_display(self, request: HttpRequest) -> list[Any]:
        # One lookup of the table in use per page, not per row.
        table = current_fx_table()
        used = table.newest.pk if table.origin == FROM_FEED and table.newest else None

        @admin.display(description="in use", boolean=True)
        def in_use(obj: FxRateSet) -> bool:
            return obj.pk == used

        return [*self.list_display[:2], in_use, *self.list_display[2:]]

    @admin.display(description="age")
    def age(self, obj: FxRateSet) -> str:
        return _age(obj.age_seconds(timezone.now()))

    @admin.display(description="currencies")
    def currencies(self, obj: FxRateSet) -> int:
        return len(obj.rates)

    @admin.display(description="rates (units of the platform currency per unit)")
    def rate_table(self, obj: FxRateSet) -> str:
        rows = sorted(obj.rates.items())
        body = format_html_join("", "<tr><td>{}</td><td>{}</td></tr>", rows)
        return format_html("<table><tbody>{}</tbody></table>", body)
