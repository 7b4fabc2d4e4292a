from datetime import UTC, datetime, time
from decimal import Decimal

from django.db import models
from django.utils import timezone


class FxRateSetQuerySet(models.QuerySet["FxRateSet"]):
    def newest(self) -> "FxRateSet | None":
        """The most recent reference day loaded: the last good set."""
        return self.order_by("-rates_date", "-fetched_at").first()


class FxRateSet(models.Model):
    """One day's reference rates as loaded from `FX_SOURCE` (a good set only: a file that
    does not parse leaves no row). Rates are platform units per unit, as decimal strings."""

    rates_date = models.DateField(help_text="The day the rates are for, as the file says.")
    rates = models.JSONField(help_text="ISO 4217 code → platform units one unit is worth.")
    source = models.CharField(max_length=500)
    fetched_at = models.DateTimeField(default=timezone.now)
    checked_at = models.DateTimeField(
        default=timezone.now, help_text="The last time the source still gave this set."
    )

    objects = FxRateSetQuerySet.as_manager()

    class Meta:
        ordering = ["-rates_date", "-fetched_at"]
        constraints = [
            models.UniqueConstraint(fields=["rates_date", "source"], name="fx_one_set_per_day")
        ]
        verbose_name = "FX rate set"

    def __str__(self) -> str:
        return f"FX rates of {self.rates_date}"

    def decimal_rates(self) -> dict[str, Decimal]:
        return {code: Decimal(value) for code, value in self.rates.items()}

    def as_of(self) -> datetime:
        """When the rates were set: the ECB publishes around 16:00 CET; midnight UTC of the
        reference day is earlier, so a set is never taken for younger than it is."""
        return datetime.combine(self.rates_date, time(0), tzinfo=UTC)

    def age_seconds(self, now: datetime) -> float:
        return max(0.0, (now - self.as_of()).total_seconds())
