"""Converting report amounts with the rates in effect when they were spent.

The reference rates are one set per day (`FxRateSet`), so the rate of an hour is that of its
UTC day: the newest set of that day or before, while it is younger than FX_MAX_AGE_SECONDS
then, laid over the `FX_RATES` constants, exactly as the snapshot builder chose it at the
time (`campaigns.fx.services.current_fx_table`); the constants alone before any set.
Rates are platform units (SERVING_CURRENCY) per unit.
"""

import bisect
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings

from campaigns.fx.services import configured_fx_rates
from campaigns.models import FxRateSet


class FxHistory:
    """The rate tables of the days up to `last`, loaded once per report."""

    def __init__(self, last: date) -> None:
        self.constants = configured_fx_rates()
        # The rates as stored (strings), made Decimal only for the days a report reads.
        by_day: dict[date, dict[str, str]] = {}
        # Oldest first and, within a day, the newest fetch last: it wins, as `newest()`.
        for rates_date, rates in (
            FxRateSet.objects.filter(rates_date__lte=last)
            .order_by("rates_date", "fetched_at")
            .values_list("rates_date", "rates")
        ):
            by_day[rates_date] = rates
        self._days = sorted(by_day)
        self._raw = [by_day[d] for d in self._days]
        self._tables: dict[int, dict[str, Decimal]] = {}
        self._max_age = timedelta(seconds=settings.FX_MAX_AGE_SECONDS)
        self.used_sets: set[date] = set()
        self.used_constants = False
        self._cache: dict[date, dict[str, Decimal]] = {}

    def table(self, day: date) -> dict[str, Decimal]:
        """The rates in effect on `day` (UTC); computed once per day."""
        table = self._cache.get(day)
        if table is None:
            table = self._cache[day] = self._table(day)
        return table

    def _table(self, day: date, mark: bool = True) -> dict[str, Decimal]:
        i = bisect.bisect_right(self._days, day) - 1
        if i >= 0 and day - self._days[i] <= self._max_age:
            if mark:
                self.used_sets.add(self._days[i])
            return {**self.constants, **self._set(i)}
        if mark:
            self.used_constants = True
        return self.constants

    def _set(self, i: int) -> dict[str, Decimal]:
        table = self._tables.get(i)
        if table is None:
            raw = self._raw[i]
            table = self._tables[i] = {code: Decimal(value) for code, value in raw.items()}
        return table

    def factors(self, first: date, last: date, to: str) -> dict[str, str]:
        """What one unit of each other currency is in `to` on each UTC day of [first, last],
        keyed currency + ISO date ("EUR2026-01-31"), for the report's SQL to multiply by;
        a currency with no rate on a day has no key. Marks nothing as used (`table` does)."""
        out: dict[str, str] = {}
        day = first
        while day <= last:
            table = self._table(day, mark=False)
            target = table.get(to)
            if target:
                stamp = day.isoformat()
                for code, rate in table.items():
                    if code != to:
                        out[code + stamp] = str(rate / target)
            day += timedelta(days=1)
        return out

    def factor_rows(self, first: date, last: date, to: str) -> list[tuple[str, date, str]]:
        """`factors` as (currency, day, factor) rows, for the report's SQL to join on."""
        return [
            (key[:-10], date.fromisoformat(key[-10:]), factor)
            for key, factor in self.factors(first, last, to).items()
        ]

    def sources(self, first: date, last: date) -> dict[str, int]:
        """Which rates each UTC day of [first, last] converts at, keyed by ISO date: the
        ordinal of its reference set's date, or 0 for the constants alone."""
        out: dict[str, int] = {}
        day = first
        while day <= last:
            i = bisect.bisect_right(self._days, day) - 1
            fresh = i >= 0 and day - self._days[i] <= self._max_age
            out[day.isoformat()] = self._days[i].toordinal() if fresh else 0
            day += timedelta(days=1)
        return out

    def mark(self, sources: list[int | None]) -> None:
        """Note the rate sources (`sources` values; None for none) amounts were converted
        at, for `describe`: the oldest and newest set, and whether the constants were."""
        used = [s for s in sources if s is not None]
        if 0 in used:
            self.used_constants = True
        sets = [s for s in used if s]
        if sets:
            self.used_sets.update((date.fromordinal(min(sets)), date.fromordinal(max(sets))))

    def convert(self, amount: Decimal, currency: str, to: str, day: date) -> Decimal | None:
        """`amount` of `currency` in `to` at the rates of `day`; None without a rate."""
        if currency == to:
            return amount
        table = self.table(day)
        source, target = table.get(currency), table.get(to)
        if source is None or target is None:
            return None
        return amount * source / target

    def known(self, currency: str) -> bool:
        """Whether any table (the constants or a loaded day) prices `currency`."""
        return currency in self.constants or any(currency in t for t in self._raw)

    def describe(self) -> str:
        """How the report converted, in words (the page and the API say it)."""
        parts = []
        if self.used_sets:
            first, last = min(self.used_sets), max(self.used_sets)
            span = f"{first}" if first == last else f"{first} to {last}"
            parts.append(f"the ECB reference rates of each day ({span})")
        if self.used_constants:
            parts.append("the configured FX_RATES where no reference set was in effect")
        if not parts:
            return "No conversion was needed: every amount is in the report currency."
        return "Amounts in other currencies were converted at " + " and ".join(parts) + "."
