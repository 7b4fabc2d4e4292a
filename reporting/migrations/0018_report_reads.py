"""What the measurement report reads with: on Postgres, a sum of counts kept in a bigint,
and the (currency, day) index of the daily rows covering what the report reads from them.

Postgres's own SUM(bigint) keeps a 128-bit state per group, allocated apart, and returns a
numeric; over a year of 10,000 line items' rows that state cost most of the grouping's time.
This one adds with int8pl (an overflow is an error, never a wrong count), in parallel too.
SQLite (the demo) keeps SUM. The index covers the spend, grouping and scoping columns of the
days read for their amounts only (months in other currencies than the report's), so they
are read from the index alone rather than a table page each.
"""

from typing import Any

from django.db import migrations, models

CREATE = """
CREATE AGGREGATE report_sum_bigint(bigint) (
    SFUNC = int8pl, STYPE = bigint, COMBINEFUNC = int8pl, PARALLEL = SAFE
)
"""
DROP = "DROP AGGREGATE IF EXISTS report_sum_bigint(bigint)"


def _run(sql: str) -> Any:
    def run(apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("reporting", "0017_model_kind_pcvr"),
    ]

    operations = [
        migrations.RunPython(_run(CREATE), _run(DROP)),
        migrations.RemoveIndex(model_name="demanddaily", name="demand_daily_currency_day"),
        migrations.AddIndex(
            model_name="demanddaily",
            index=models.Index(
                fields=["currency", "day"],
                include=[
                    "spend",
                    "line_item_id",
                    "campaign_id",
                    "advertiser_id",
                    "placement_id",
                    "buyer_id",
                    "door",
                ],
                name="demand_daily_currency_spend",
            ),
        ),
    ]
