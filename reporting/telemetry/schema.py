"""The Parquet schema of the telemetry files, versioned (docs/telemetry.md).

Three datasets, each partitioned by UTC date and hour (`date=YYYY-MM-DD/hour=H/`):
`decisions` holds one row per ad slot decided, `outcomes` one row per impression, click,
creative error or player/viewability event, joined to its decision by `decision_id` (the
server's id, never the caller's); `conversions` (version 3) one row per attributed
conversion, joined the same way.
A column added later is appended at the end and bumps `SCHEMA_VERSION`; readers select by
name, so files of an older version stay readable (the new column reads as null).
"""

import pyarrow as pa

SCHEMA_VERSION = 3

CANDIDATE = pa.struct(
    [
        pa.field("line_item_id", pa.int64()),  # 0: an external buyer's bid
        pa.field("creative_id", pa.int64()),  # 0: not drawn (a loser)
        pa.field("tier", pa.int16()),
        pa.field("bid_micros", pa.int64()),
        pa.field("score_micros", pa.int64()),  # the eCPM it ranked by
        pa.field("predicted_ctr", pa.float64()),
    ]
)

DECISIONS = pa.schema(
    [
        pa.field("schema_version", pa.int16(), nullable=False),
        pa.field("stream_id", pa.string(), nullable=False),  # the raw entry, for exactly once
        pa.field("decision_id", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("placement_id", pa.int64(), nullable=False),
        # The winner: 0 when nothing of ours filled the slot (buyer_id then says who did).
        pa.field("line_item_id", pa.int64(), nullable=False),
        pa.field("campaign_id", pa.int64(), nullable=False),
        pa.field("advertiser_id", pa.int64(), nullable=False),
        pa.field("creative_id", pa.int64(), nullable=False),
        pa.field("buyer_id", pa.int64(), nullable=False),
        pa.field("filled", pa.bool_(), nullable=False),
        # The consent ledger and its outcome (personalised, contextual, none...).
        pa.field("consent", pa.string(), nullable=False),
        pa.field("consent_outcome", pa.string(), nullable=False),
        # Personal features: null unless the consent outcome was "personalised".
        pa.field("pseudonymous_id", pa.string()),
        pa.field("ip_truncated", pa.string()),
        pa.field("test", pa.bool_(), nullable=False),
        # Why an event is invalid traffic, when it is (null: valid or not judged).
        pa.field("invalid_reason", pa.string()),
        # Version 2: what a filled slot's decision knew (`serving.telemetry`); null on an
        # unfilled slot and on rows of version 1.
        pa.field("door", pa.string()),  # v1 or openrtb
        pa.field("format", pa.string()),
        pa.field("size", pa.string()),
        pa.field("country", pa.string()),
        pa.field("region", pa.string()),  # null unless personalised
        pa.field("device_type", pa.int16()),
        pa.field("os", pa.string()),
        pa.field("channel", pa.string()),
        pa.field("content_categories", pa.list_(pa.string())),
        pa.field("keyword_hashes", pa.list_(pa.int64())),  # CRC-32 of each keyword
        pa.field("propensity", pa.float64()),  # the chosen creative's, under rotation
        pa.field("clearing_price_micros", pa.int64()),
        pa.field("hour_of_week", pa.int16()),  # 0-167, in the advertiser's time zone
        pa.field("candidates", pa.list_(CANDIDATE)),  # the winner first
    ]
)

OUTCOMES = pa.schema(
    [
        pa.field("schema_version", pa.int16(), nullable=False),
        pa.field("stream_id", pa.string(), nullable=False),
        pa.field("decision_id", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("kind", pa.string(), nullable=False),  # imp, clk, err, evt
        pa.field("placement_id", pa.int64(), nullable=False),
        pa.field("line_item_id", pa.int64(), nullable=False),
        pa.field("campaign_id", pa.int64(), nullable=False),
        pa.field("advertiser_id", pa.int64(), nullable=False),
        pa.field("creative_id", pa.int64(), nullable=False),
        pa.field("buyer_id", pa.int64(), nullable=False),
        # imp: the clearing CPM in micros; clk: a CPC click's price in billionths.
        pa.field("price_micros", pa.int64(), nullable=False),
        pa.field("error_code", pa.string()),
        # evt: the player or viewability event (viewable, measurable, start, complete...).
        pa.field("event_name", pa.string()),
        pa.field("test", pa.bool_(), nullable=False),
        pa.field("invalid_reason", pa.string()),
    ]
)

# Version 3: attributed conversions, written by the attribution job (reporting.telemetry.
# conversions), joined to their decision by `decision_id`.
CONVERSIONS = pa.schema(
    [
        pa.field("schema_version", pa.int16(), nullable=False),
        pa.field("stream_id", pa.string(), nullable=False),  # the conversion's raw entry
        pa.field("decision_id", pa.string(), nullable=False),  # the decision credited
        pa.field("ts", pa.timestamp("ms", tz="UTC"), nullable=False),  # when it converted
        pa.field("touched_at", pa.timestamp("ms", tz="UTC")),  # the click or the view
        pa.field("event_name", pa.string(), nullable=False),  # purchase, signup...
        pa.field("attribution", pa.string(), nullable=False),  # post_click or post_view
        pa.field("source", pa.string(), nullable=False),  # pixel or postback
        # The value as sent (micros of `currency`), and in the campaign's currency.
        pa.field("value_micros", pa.int64()),
        pa.field("currency", pa.string()),
        pa.field("attributed_value_micros", pa.int64()),
        pa.field("attributed_currency", pa.string()),
        pa.field("placement_id", pa.int64(), nullable=False),
        pa.field("line_item_id", pa.int64(), nullable=False),
        pa.field("campaign_id", pa.int64(), nullable=False),
        pa.field("advertiser_id", pa.int64(), nullable=False),
        pa.field("creative_id", pa.int64(), nullable=False),
        # The conversion's pseudonym where consent allowed an id (docs/conversions.md).
        pa.field("pseudonymous_id", pa.string()),
    ]
)

DATASETS = {"decisions": DECISIONS, "outcomes": OUTCOMES, "conversions": CONVERSIONS}
OUTCOME_KINDS = frozenset({"imp", "clk", "err", "evt"})
