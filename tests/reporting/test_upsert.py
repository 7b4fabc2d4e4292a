"""The batch writes under ingest (`reporting.measurement.upsert`): one statement per table,
values exactly as given, duplicates of a key summed, new keys told apart from known ones."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from reporting.measurement.upsert import add_rows, array_literal, insert_new
from reporting.models import BilledDecision, ConsentHourly, HourlyRollup

pytestmark = pytest.mark.django_db

HOUR = datetime(2026, 12, 3, 14, tzinfo=UTC)
AWKWARD = ['say "hi"', "back\\slash", "a,b", "{braces}", "NULL", "", " spaced ", "é → ü"]


def test_strings_that_need_quoting_are_stored_as_given() -> None:
    add_rows(
        ConsentHourly, ("hour", "outcome", "reason", "valid_signal"), (), ("requests",),
        [(HOUR, "contextual", reason, n % 2 == 0, n + 1) for n, reason in enumerate(AWKWARD)],
    )  # fmt: skip

    stored = ConsentHourly.objects.values_list("reason", "valid_signal", "requests")
    assert sorted(stored) == sorted((reason, n % 2 == 0, n + 1) for n, reason in enumerate(AWKWARD))


def test_rows_add_to_existing_ones_and_a_key_given_twice_is_summed() -> None:
    key = ("hour", "placement_id", "line_item_id")
    amounts = ("requests", "impressions", "clicks", "errors", "spend")
    row = (HOUR, 1, 2, 30, 40, 5, 1, 0, 0, Decimal("0.004000001"))
    add_rows(HourlyRollup, key, ("campaign_id", "advertiser_id"), amounts, [row])

    add_rows(HourlyRollup, key, ("campaign_id", "advertiser_id"), amounts, [row, row])

    stored = HourlyRollup.objects.get()
    assert (stored.campaign_id, stored.advertiser_id) == (30, 40)
    assert (stored.requests, stored.impressions, stored.clicks, stored.errors) == (15, 3, 0, 0)
    assert stored.spend == Decimal("0.012000003")


def test_insert_new_returns_only_the_keys_not_there_before() -> None:
    at = datetime(2026, 12, 3, 14, 5, tzinfo=UTC)
    BilledDecision.objects.create(decision_id="seen", kind="imp", recorded_at=at)
    columns = ("decision_id", "kind", "recorded_at")

    new = insert_new(
        BilledDecision, ("decision_id", "kind"), columns,
        [("seen", "imp", at), ("seen", "clk", at), ('odd"id\\', "imp", at)],
    )  # fmt: skip

    assert new == {("seen", "clk"), ('odd"id\\', "imp")}
    assert BilledDecision.objects.count() == 3


def test_array_literal_quotes_strings_and_refuses_naive_times() -> None:
    assert array_literal([1, 2]) == "{1,2}"
    assert array_literal([True, False]) == "{t,f}"
    assert array_literal(['a"b', "c\\d"]) == '{"a\\"b","c\\\\d"}'
    with pytest.raises(ValueError, match="naive"):
        array_literal([datetime(2026, 12, 3)])  # noqa: DTZ001 - the case refused
