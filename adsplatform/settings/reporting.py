"""Reporting: event ingestion, operations endpoints, the live dashboard, telemetry,
conversions, measurement rollups and learning.
"""

from django.core.exceptions import ImproperlyConfigured

from adsplatform.settings.base import REDIS_KEY_PREFIX, REDIS_URL, env

# Ingestion holds a lock this long, renewed while it works, so a killed worker's lock
# expires within seconds (reporting/lease.py); and reads the stream this many entries a batch.
INGEST_LOCK_SECONDS = env.float("INGEST_LOCK_SECONDS", default=5.0)
INGEST_BATCH_SIZE = env.int("INGEST_BATCH_SIZE", default=5000)
# Partitions of the event stream (`events`, `events:1`, ...): serving appends a request's
# events to one chosen by its decision id; each is rolled up by its own consumer, lease and
# watermark, so ingestion runs on as many Celery workers as there are partitions. 1 on the
# embedded default. Changing it needs nothing drained: ingestion, telemetry, retention and
# data-subject requests read every partition ever configured (`reporting.stream.partitions`).
EVENT_STREAM_PARTITIONS = env.int("EVENT_STREAM_PARTITIONS", default=1)
if not 1 <= EVENT_STREAM_PARTITIONS <= 256:
    raise ImproperlyConfigured(
        f"EVENT_STREAM_PARTITIONS is {EVENT_STREAM_PARTITIONS}; expected 1 to 256"
    )
# The event stream is never trimmed by length (that would drop entries not rolled up yet);
# past this many entries it is reported instead: a log line per crossing, a gauge in Redis,
# the admin's ingestion status (reporting/backlog.py). 5,000,000 entries is about 17 minutes
# of stalled ingestion at 2,500 requests/s.
STREAM_BACKLOG_LIMIT = env.int("STREAM_BACKLOG_LIMIT", default=5_000_000)

# Operations (reporting.metrics): /metrics answers loopback, or this bearer token when set.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Per-campaign budget series on /metrics: live campaigns only, at most this many (by id), so
# a scrape stays a few hundred kilobytes; adsplatform_campaigns_live says how many there are.
METRICS_CAMPAIGN_LIMIT = env.int("METRICS_CAMPAIGN_LIMIT", default=500)
# /readyz: the checks that make it answer 503 (of database, redis, snapshot, beat, ingest),
# how long without a pacing run means beat is down, and the unrolled entries that mean
# ingestion has fallen behind.
READYZ_REQUIRED = env.list("READYZ_REQUIRED", default=["database", "redis", "snapshot"])
READYZ_BEAT_STALE_SECONDS = env.float("READYZ_BEAT_STALE_SECONDS", default=60.0)
READYZ_INGEST_LAG_LIMIT = env.int("READYZ_INGEST_LAG_LIMIT", default=100_000)
# Billed (decision id, kind) pairs are kept this long past SERVING_TOKEN_TTL_SECONDS, for
# clocks that disagree, then pruned by the retention job (reporting/billing.py).
BILLED_DECISION_MARGIN_SECONDS = env.int("BILLED_DECISION_MARGIN_SECONDS", default=3600)

# --- Live dashboard (issue 15; reporting/live) --------------------------------------------
# The channels layer (websocket groups) on the project's Redis, under our key prefix.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": f"{REDIS_KEY_PREFIX}asgi", "expiry": 10},
    }
}
# How often the figures of watched pages are pushed (one Celery task per tick for all of
# them); a tick older than its period in the queue is dropped, the next one is fresher.
LIVE_EVERY_SECONDS = env.float("LIVE_EVERY_SECONDS", default=2.0)
# --- End of Live dashboard ---------------------------------------------------------------------

# --- Telemetry (issue #16; docs/telemetry.md) ------------------------------------------------
# Log-level Parquet files of decisions and outcomes, written from the event stream by a beat
# job with its own watermark; raw events are not trimmed before it has written them.
TELEMETRY_ENABLED = env.bool("TELEMETRY_ENABLED", default=True)
TELEMETRY_BATCH_SIZE = env.int("TELEMETRY_BATCH_SIZE", default=20_000)
# Candidates serving records per filled slot (the winner first, then the auction's losers).
TELEMETRY_CANDIDATES = env.int("TELEMETRY_CANDIDATES", default=8)
# Files of hours older than this are deleted by the retention job (purge-personal-data).
TELEMETRY_RETENTION_DAYS = env.int("TELEMETRY_RETENTION_DAYS", default=90)
# --- End of Telemetry --------------------------------------------------------------------------

# --- Conversions (issue #16; docs/conversions.md) --------------------------------------------
# Attribution of the pixel's and postbacks' conversions, from the event stream with its own
# watermark, every CONVERSIONS_EVERY_SECONDS; conversion rows are kept this many days.
CONVERSION_RETENTION_DAYS = env.int("CONVERSION_RETENTION_DAYS", default=400)
# --- End of Conversions ------------------------------------------------------------------------

# Measurement rollups (reporting/measurement/rollup.py): each UTC day is summed into daily
# rows DEMAND_DAY_CLOSE_HOURS after it ends (a later event is added to both), and its hours
# are deleted after DEMAND_HOURLY_DAYS; the job runs every DEMAND_ROLLUP_SECONDS. Reports read
# whole days from the daily rows and the rest from the hours.
DEMAND_HOURLY_DAYS = env.int("DEMAND_HOURLY_DAYS", default=35)
DEMAND_DAY_CLOSE_HOURS = env.int("DEMAND_DAY_CLOSE_HOURS", default=3)
if DEMAND_HOURLY_DAYS < 1 or DEMAND_DAY_CLOSE_HOURS < 0:
    raise ImproperlyConfigured(
        "DEMAND_HOURLY_DAYS must be 1 or more, DEMAND_DAY_CLOSE_HOURS 0 or more"
    )

# --- Learning (issue #16; docs/learning.md) --------------------------------------------------
# A daily job trains a pCTR model on the telemetry files' last LEARNING_TRAIN_DAYS before a
# held-out LEARNING_HOLDOUT_DAYS, evaluates it on the held-out days and promotes it when it
# beats the baselines and the live model there (by LEARNING_PROMOTE_MIN_GAIN, relative).
LEARNING_TRAIN_DAYS = env.int("LEARNING_TRAIN_DAYS", default=7)
LEARNING_HOLDOUT_DAYS = env.int("LEARNING_HOLDOUT_DAYS", default=1)
LEARNING_MIN_ROWS = env.int("LEARNING_MIN_ROWS", default=1000)
LEARNING_MIN_HOLDOUT_ROWS = env.int("LEARNING_MIN_HOLDOUT_ROWS", default=200)
LEARNING_AUTO_PROMOTE = env.bool("LEARNING_AUTO_PROMOTE", default=True)
LEARNING_PROMOTE_MIN_GAIN = env.float("LEARNING_PROMOTE_MIN_GAIN", default=0.0)
LEARNING_HASH_BITS = env.int("LEARNING_HASH_BITS", default=18)
LEARNING_C = env.float("LEARNING_C", default=1.0)
# Impressions' worth of the window's CTR added to each line item's and creative's counts.
LEARNING_PRIOR_IMPRESSIONS = env.float("LEARNING_PRIOR_IMPRESSIONS", default=100.0)
LEARNING_COMPARE_LIGHTGBM = env.bool("LEARNING_COMPARE_LIGHTGBM", default=True)
LEARNING_LIGHTGBM_MIN_GAIN = env.float("LEARNING_LIGHTGBM_MIN_GAIN", default=0.02)
# The pCVR model (conversions per click) is trained beside it only when the training window's
# clicks led to at least LEARNING_MIN_CONVERSIONS post-click conversions; a click counts as
# converted when one came within LEARNING_CONVERSION_LAG_HOURS, and its windows end that much
# earlier, so every click in them has had the whole lag to convert.
LEARNING_MIN_CONVERSIONS = env.int("LEARNING_MIN_CONVERSIONS", default=100)
LEARNING_CONVERSION_LAG_HOURS = env.int("LEARNING_CONVERSION_LAG_HOURS", default=24)
# Serving with the live model (docs/learning.md): a CPC line item's pCTR is capped at this
# many times its smoothed CTR (the index sorts by that bound); delivery figures of the last
# LEARNING_STATS_DAYS feed the smoothed conversion rates (LEARNING_PRIOR_CLICKS clicks'
# worth of the overall rate) and the creative optimiser.
LEARNING_PCTR_CEILING_RATIO = env.float("LEARNING_PCTR_CEILING_RATIO", default=5.0)
LEARNING_STATS_DAYS = env.int("LEARNING_STATS_DAYS", default=14)
LEARNING_PRIOR_CLICKS = env.float("LEARNING_PRIOR_CLICKS", default=50.0)
# Creative optimisation (a line item's creative_rotation = optimise): Thompson sampling's
# shares estimated from this many joint draws per build, mixed with a uniform exploration
# share so every creative keeps being shown (and the logs fit for off-policy evaluation).
LEARNING_TS_DRAWS = env.int("LEARNING_TS_DRAWS", default=4000)
LEARNING_EXPLORATION = env.float("LEARNING_EXPLORATION", default=0.1)
if not 0 < LEARNING_EXPLORATION <= 1:
    raise ImproperlyConfigured(f"LEARNING_EXPLORATION must be in (0, 1]: {LEARNING_EXPLORATION}")
if not 8 <= LEARNING_HASH_BITS <= 24:
    raise ImproperlyConfigured(f"LEARNING_HASH_BITS must be 8 to 24, not {LEARNING_HASH_BITS}")
# --- End of Learning ---------------------------------------------------------------------------
