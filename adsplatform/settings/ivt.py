"""Invalid traffic (issue 18; docs/ivt.md): what serving refuses and what is flagged."""

from adsplatform.settings.base import BASE_DIR, env

# Off, no impression or click is judged and no decision is refused for its address (crawlers
# still get no ad). Scripted test traffic is all invalid by design: the test suite turns it
# off except where it tests it.
IVT_ENABLED = env.bool("IVT_ENABLED", default=True)
# Data-center and hosting prefixes serving loads at start; the refresh job publishes newer
# ones (from this file and IVT_DATACENTER_URLS) through Redis, keeping the last good copy.
IVT_DATACENTER_FILE = env.str(
    "IVT_DATACENTER_FILE", default=str(BASE_DIR / "serving/ivt/data/datacenter-ranges.txt")
)
IVT_DATACENTER_URLS = env.list("IVT_DATACENTER_URLS", default=[])
# The header our own proxy or load balancer sets to the client's address (e.g. "x-real-ip");
# empty: the connection's peer. Never a header a client could set unchecked.
SERVING_CLIENT_IP_HEADER = env.str("SERVING_CLIENT_IP_HEADER", default="")
# The thresholds' defaults (serving.ivt.judge.IvtRules; admin edits override them).
IVT_RULES = {
    "enabled": IVT_ENABLED,
    # "no_ad" or "house": what a decision from a data-center address gets.
    "datacenter_action": env.str("IVT_DATACENTER_ACTION", default="no_ad"),
    "min_click_ms": env.int("IVT_MIN_CLICK_MS", default=1000),
    "id_imps_per_minute": env.int("IVT_ID_IMPS_PER_MINUTE", default=30),
    "id_imps_per_hour": env.int("IVT_ID_IMPS_PER_HOUR", default=600),
    "id_clicks_per_minute": env.int("IVT_ID_CLICKS_PER_MINUTE", default=3),
    "id_clicks_per_hour": env.int("IVT_ID_CLICKS_PER_HOUR", default=20),
    "id_hold_seconds": env.int("IVT_ID_HOLD_SECONDS", default=3600),
    "min_render_px": env.int("IVT_MIN_RENDER_PX", default=10),
    "ip_imps_per_minute": env.int("IVT_IP_IMPS_PER_MINUTE", default=600),
    "ip_imps_per_hour": env.int("IVT_IP_IMPS_PER_HOUR", default=12000),
    "ip_clicks_per_minute": env.int("IVT_IP_CLICKS_PER_MINUTE", default=60),
    "ip_clicks_per_hour": env.int("IVT_IP_CLICKS_PER_HOUR", default=600),
}
# A placement whose hourly CTR is this many times its trailing norm (and has this many
# clicks at least) is flagged for review.
IVT_CTR_FLAG_RATIO = env.float("IVT_CTR_FLAG_RATIO", default=5.0)
IVT_CTR_FLAG_MIN_CLICKS = env.int("IVT_CTR_FLAG_MIN_CLICKS", default=20)
