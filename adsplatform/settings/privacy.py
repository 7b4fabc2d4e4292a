"""Privacy (issue #6; docs/privacy.md explains each setting) and the retention of raw events.

PSEUDONYM_SECRET is with the other secrets in `adsplatform.settings.base`.
"""

from django.core.exceptions import ImproperlyConfigured

from adsplatform.settings.base import env
from compliance import geography

# Raw events stay in the Redis stream this long after they are rolled up.
RAW_EVENT_RETENTION_SECONDS = env.int("RAW_EVENT_RETENTION_SECONDS", default=24 * 3600)
# Where a request without regs.gdpr is treated as gdpr = 1 (ISO 3166-1 alpha-2 codes, comma
# separated): by default the EU, the rest of the EEA, the UK and Switzerland.
try:
    GDPR_COUNTRIES = sorted(
        geography.parse_country_list(
            env.list("GDPR_COUNTRIES", default=sorted(geography.GDPR_COUNTRIES)), "GDPR_COUNTRIES"
        )
    )
except ValueError as error:
    raise ImproperlyConfigured(str(error)) from None
# A buyer's user id learnt by user sync (/v1/sync) is kept this long after its last sync. It
# is keyed by the pseudonym of its period, so after a key rotation it is no longer found.
SYNC_TTL_SECONDS = env.int("SYNC_TTL_SECONDS", default=30 * 86400)
# The pseudonym key changes every this many days (counted from the Unix epoch, in UTC).
PSEUDONYM_ROTATION_DAYS = env.int("PSEUDONYM_ROTATION_DAYS", default=30)
# Data-subject request jobs read the raw event stream this many entries at a time.
DSAR_SCAN_CHUNK = env.int("DSAR_SCAN_CHUNK", default=5000)
# An access request's export holds personal data; it is deleted this many days after it is made.
DSAR_EXPORT_RETENTION_DAYS = env.int("DSAR_EXPORT_RETENTION_DAYS", default=30)
