"""The placeholders rendered markup leaves for serving, and what serving puts there.

Serving replaces each with a plain string (no escaping): the tracking URLs with signed
absolute URLs (no query string of their own, so `?code=`/`?e=` can follow), the ad serving id
with the decision id and the cache buster with a random number. In VAST every URL is a CDATA
section, so URLs with `&` keep the document valid.
"""

IMP_URL = "%%IMP_URL%%"
CLICK_URL = "%%CLICK_URL%%"
ERROR_URL = "%%ERROR_URL%%"  # followed by ?code=<VAST error code>
EVENT_URL = "%%EVENT_URL%%"  # followed by ?e=<VAST tracking event>
AD_SERVING_ID = "%%AD_SERVING_ID%%"
CACHEBUSTER = "%%CACHEBUSTER%%"

ALL = (IMP_URL, CLICK_URL, ERROR_URL, EVENT_URL, AD_SERVING_ID, CACHEBUSTER)

# Render failures of HTML creatives, reported as `%%ERROR_URL%%?code=<n>` with the VAST
# error codes of the same meaning, so one table serves every format.
ERROR_NOT_FOUND = 401  # an image, or an asset of an HTML5 creative, failed to load
ERROR_TIMEOUT = 402  # the HTML5 frame had not loaded 10 seconds after the impression
ERROR_UNDEFINED = 900  # an uncaught script error inside an HTML5 creative
HTML5_LOAD_TIMEOUT_MS = 10_000

# A transparent GIF: the preview's impression pixel, which records nothing.
BLANK_GIF = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"


def substitute(text: str, values: dict[str, str]) -> str:
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text


def preview_values(landing_url: str) -> dict[str, str]:
    """What the preview puts in place of the placeholders: nothing is recorded or billed."""
    return {
        IMP_URL: BLANK_GIF,
        CLICK_URL: landing_url,
        ERROR_URL: "data:,error",
        EVENT_URL: "data:,event",
        AD_SERVING_ID: "preview",
        CACHEBUSTER: "0",
    }
