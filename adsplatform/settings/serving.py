"""Serving (issue #4; README "Serving"): tracking URLs, consent, currencies, limits, geo.

SERVING_SIGNING_KEY is with the other secrets in `adsplatform.settings.base`; invalid
traffic has `adsplatform.settings.ivt`.
"""

from django.core.exceptions import ImproperlyConfigured

from adsplatform.settings.base import env
from adsplatform.settings.storage import MEDIA_URL
from campaigns.fx.rates import FxError, parse_fx_setting

# The public base of tracking URLs.
SERVING_PUBLIC_URL = env.str("SERVING_PUBLIC_URL", default="http://127.0.0.1:8000").rstrip("/")
# Impression and click tokens older than this are not billed.
SERVING_TOKEN_TTL_SECONDS = env.int("SERVING_TOKEN_TTL_SECONDS", default=3600)
# Asset URLs in rendered creatives are built on this base (a CDN in production).
CDN_BASE_URL = env.str("CDN_BASE_URL", default=f"{SERVING_PUBLIC_URL}/{MEDIA_URL}").rstrip("/")
# Our vendor id in the IAB Global Vendor List: GDPR consent is checked against it.
GVL_VENDOR_ID = env.int("GVL_VENDOR_ID", default=9999)
# The Global Vendor List judging each buyer (docs/privacy.md): a vendor-list.json on disk,
# used until a version has been loaded from GVL_URL by the refresh-gvl beat job (the IAB
# publishes a new version weekly). Neither set: buyers are judged by the TC string alone.
GVL_PATH = env.str("GVL_PATH", default="")
GVL_URL = env.str("GVL_URL", default="")
# Prices, floors and bids are compared in this currency; others convert through FX_RATES
# ("EUR=1.08,GBP=1.27": one EUR is worth 1.08 of SERVING_CURRENCY). A malformed value stops
# the server at start, naming the bad item. With FX_SOURCE set (a file path or http(s) URL of
# an ECB eurofxref XML), the reference rates are loaded every FX_REFRESH_SECONDS and used
# while younger than FX_MAX_AGE_SECONDS; FX_RATES is the fallback when they are stale.
SERVING_CURRENCY = env.str("SERVING_CURRENCY", default="USD").upper()
try:
    FX_RATES = parse_fx_setting(env.str("FX_RATES", default="EUR=1.08,GBP=1.27,JPY=0.0067"))
except FxError as error:
    raise ImproperlyConfigured(str(error)) from None
FX_SOURCE = env.str("FX_SOURCE", default="")
FX_REFRESH_SECONDS = env.float("FX_REFRESH_SECONDS", default=3600.0)
# The ECB publishes on working days: Friday's rates are still the newest on a Monday morning,
# and a long holiday weekend can span five days.
FX_MAX_AGE_SECONDS = env.int("FX_MAX_AGE_SECONDS", default=5 * 86400)
# Requests per second per placement key, across all serving processes (429 above it).
SERVING_RATE_LIMIT = env.int("SERVING_RATE_LIMIT", default=20000)
# Waiting for external buyers: at most this long, and always below an inbound tmax.
SERVING_BUYER_TIMEOUT_MS = env.int("SERVING_BUYER_TIMEOUT_MS", default=120)
# A buyer's circuit opens for the whole fleet (every serving process skips it for the
# cooldown) when at least this share of the fleet's calls to it failed over the window, with
# at least the minimum number of calls (serving/limits/fleet.py).
SERVING_BUYER_BREAKER_ERROR_RATE = env.float("SERVING_BUYER_BREAKER_ERROR_RATE", default=0.5)
SERVING_BUYER_BREAKER_MIN_CALLS = env.int("SERVING_BUYER_BREAKER_MIN_CALLS", default=20)
SERVING_BUYER_BREAKER_WINDOW_SECONDS = env.int("SERVING_BUYER_BREAKER_WINDOW_SECONDS", default=10)
SERVING_BUYER_BREAKER_COOLDOWN_SECONDS = env.float(
    "SERVING_BUYER_BREAKER_COOLDOWN_SECONDS", default=5.0
)
# Networks (CIDRs) serving may fetch from although they are not public: buyers' endpoints,
# notice URLs and nurl markup go to public addresses only otherwise (serving/netguard.py).
# Empty in production; tests allow 127.0.0.0/8 for their loopback buyers.
SERVING_FETCH_ALLOWED_NETWORKS = env.list("SERVING_FETCH_ALLOWED_NETWORKS", default=[])
# A request body that has not fully arrived after this long is a 408 (the connection closes).
SERVING_BODY_TIMEOUT_SECONDS = env.float("SERVING_BODY_TIMEOUT_SECONDS", default=5.0)
# Every wait of serving on Redis ends after this long (connect, a batch's replies, the
# once-a-second reads); a hung Redis then counts as down (README "Redis outage").
SERVING_REDIS_TIMEOUT_SECONDS = env.float("SERVING_REDIS_TIMEOUT_SECONDS", default=1.0)
# The predicted click-through rate of a CPC line item until the CTR model exists.
SERVING_DEFAULT_CTR = env.float("SERVING_DEFAULT_CTR", default=0.002)
# Geo: a MaxMind GeoIP2/GeoLite2 Country or City database, and/or a CDN's country header
# (e.g. "cloudfront-viewer-country", "cf-ipcountry"); trust a header only behind that CDN.
GEOIP_PATH = env.str("GEOIP_PATH", default="") or None
SERVING_COUNTRY_HEADER = env.str("SERVING_COUNTRY_HEADER", default="") or None
SERVING_REGION_HEADER = env.str("SERVING_REGION_HEADER", default="") or None
# The serving access log (logger serving.access, INFO): this share of requests, at random.
SERVING_ACCESS_LOG_SAMPLE = env.float("SERVING_ACCESS_LOG_SAMPLE", default=0.01)
