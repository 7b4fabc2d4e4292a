"""Loading reference rates on a schedule and choosing the table the snapshot carries.

`refresh_fx_rates` reads `FX_SOURCE` (a file path or an http(s) URL of an ECB
`eurofxref-daily.xml`), keeps a good set as an `FxRateSet` and leaves the last good one in
place when the source fails. `current_fx_table` is what the snapshot builder uses: the newest
set while it is younger than `FX_MAX_AGE_SECONDS`, laid over the configured `FX_RATES`
constants (for currencies the file does not list), and the constants alone once it is stale.
Serving never reads any of this: the table travels in the snapshot.
"""

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import httpx
from django.conf import settings
from django.utils import timezone

from adsplatform.sources import read_bounded
from campaigns.fx.rates import MAX_FEED_BYTES, FxError, parse_ecb_xml
from campaigns.models import FxRateSet

log = logging.getLogger(__name__)

FETCH_TIMEOUT = 10.0

# Where the table in a snapshot came from.
FROM_FEED = "feed"
FROM_SETTINGS = "settings"


@dataclass(frozen=True, slots=True)
class FxTable:
    """The rates in effect, where they came from and how old the loaded set is."""

    rates: dict[str, Decimal]
    origin: str  # FROM_FEED or FROM_SETTINGS
    newest: FxRateSet | None  # the last good set, used or not
    age_seconds: float | None  # of `newest`; None when nothing was ever loaded

    @property
    def stale(self) -> bool:
        return self.newest is not None and self.origin == FROM_SETTINGS


def configured_fx_rates() -> dict[str, Decimal]:
    """The `FX_RATES` constants, with the platform currency at 1."""
    rates = {code.upper(): Decimal(value) for code, value in settings.FX_RATES.items()}
    rates[settings.SERVING_CURRENCY.upper()] = Decimal(1)
    return rates


def current_fx_table(now: datetime | None = None) -> FxTable:
    """The table the next snapshot carries (see the module docstring)."""
    now = now or timezone.now()
    configured = configured_fx_rates()
    newest = FxRateSet.objects.newest()
    if newest is None:
        return FxTable(configured, FROM_SETTINGS, None, None)
    age = newest.age_seconds(now)
    if age > settings.FX_MAX_AGE_SECONDS:
        return FxTable(configured, FROM_SETTINGS, newest, age)
    return FxTable({**configured, **newest.decimal_rates()}, FROM_FEED, newest, age)


def fx_rates_age_seconds(now: datetime | None = None) -> float | None:
    """Age of the last good reference set, for metrics; None when none was ever loaded."""
    return current_fx_table(now).age_seconds


def read_source(source: str) -> bytes:
    """The bytes of a file path or an http(s) URL, at most MAX_FEED_BYTES."""
    return read_bounded(source, limit=MAX_FEED_BYTES, timeout=FETCH_TIMEOUT, error=FxError)


def refresh_fx_rates(source: str | None = None, now: datetime | None = None) -> FxRateSet:
    """Load the reference rates once and keep them when good; raises FxError or OSError
    (the last good set stays) when the source is unreachable or not a rate file."""
    source = source if source is not None else settings.FX_SOURCE
    if not source:
        raise FxError("FX_SOURCE is not set")
    now = now or timezone.now()
    try:
        data = read_source(source)
    except httpx.HTTPError as error:
        raise FxError(f"{source}: {error}") from error
    parsed = parse_ecb_xml(data, settings.SERVING_CURRENCY)
    rates = {code: str(rate) for code, rate in sorted(parsed.rates.items())}
    existing = FxRateSet.objects.filter(rates_date=parsed.day, source=source).first()
    if existing is not None:
        # The same day again (the ECB updates once a working day): note that it was checked.
        existing.rates, existing.checked_at = rates, now
        existing.save(update_fields=["rates", "checked_at"])
        return existing
    return FxRateSet.objects.create(
        rates_date=parsed.day, rates=rates, source=source, fetched_at=now, checked_at=now
    )
