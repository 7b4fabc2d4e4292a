"""The placeholders rendered markup leaves for serving, and what serving puts there.

Serving replaces each with a plain string (no escaping): the tracking URLs with signed
absolute URLs (no query string of their own, so `?code=`/`?e=` can follow), the ad serving id
with the decision id, the cache buster with a random number and the viewability handler with
its attribute-escaped text. In VAST every URL is a CDATA section, so URLs with `&` keep the
document valid.
"""

from html import escape

IMP_URL = "%%IMP_URL%%"
CLICK_URL = "%%CLICK_URL%%"
ERROR_URL = "%%ERROR_URL%%"  # followed by ?code=<VAST error code>
EVENT_URL = "%%EVENT_URL%%"  # followed by ?e=<VAST tracking event>
AD_SERVING_ID = "%%AD_SERVING_ID%%"
CACHEBUSTER = "%%CACHEBUSTER%%"
VIEWABILITY = "%%VIEWABILITY%%"  # in an attribute handler: VIEWABILITY_ATTR goes there

ALL = (IMP_URL, CLICK_URL, ERROR_URL, EVENT_URL, AD_SERVING_ID, CACHEBUSTER, VIEWABILITY)

# MRC viewability (IAB/MRC Viewable Ad Impression Measurement Guidelines): once the
# impression pixel has loaded, an IntersectionObserver on the ad's box sends `measurable`
# with the box's size clipped to its frame's viewport (`w`, `h`: pixel stuffing, serving.ivt),
# then `viewable` after 50 % of its pixels (30 % for ads of 242,500 px² or more) have been in
# view for one continuous second. An attribute handler, like the HTML5 watchdog: markup
# inserted with innerHTML runs no script elements. Its text is the same for every ad (the
# beacon URL is read from the pixel's data-ev), so a page's CSP can allow it by hash
# (docs/creatives.md). The server records each event once per decision (`serving.measure`).
# Stored markup carries the placeholder, not these 600 bytes: with the handler inlined, a
# book of 10,000 creatives took 7.7 MB more snapshot and 65 MiB more per serving process.
VIEWABILITY_HANDLER = (
    "(function(p){var a=p.parentNode,u=p.getAttribute('data-ev'),I=window.IntersectionObserver;"
    "if(!I||!u||p.getAttribute('data-mv'))return;p.setAttribute('data-mv','1');"
    "var r=a.getBoundingClientRect(),M=Math;new Image().src=u+'?e=measurable&w='+"
    "M.round(M.min(r.width,innerWidth))+'&h='+M.round(M.min(r.height,innerHeight));"
    "var t=r.width*r.height>=242500?.3:.5,h=0,o=new I(function(es){var e=es[es.length-1];"
    "if(e.isIntersecting&&e.intersectionRatio>=t){h=h||setTimeout(function(){o.disconnect();"
    "new Image().src=u+'?e=viewable'},1000)}else{clearTimeout(h);h=0}},{threshold:[0,t]});"
    "o.observe(a)})(this)"
)
# As in an HTML attribute: quotes and ampersands escaped as Django's templates escape them.
VIEWABILITY_ATTR = escape(VIEWABILITY_HANDLER)

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
        VIEWABILITY: VIEWABILITY_ATTR,
    }
