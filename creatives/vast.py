"""VAST 4.2 documents for video and audio creatives, and their validation against the XSD.

Our documents are InLine (uploaded renditions) or Wrapper (a third-party VAST tag). Every URL
is a CDATA section, so serving can put signed URLs containing `&` in place of the
placeholders without escaping. The player fills in the VAST macros ([ERRORCODE] and so on).

The official XSD is not part of this repository: `validate_vast` reads it from the path in
`settings.VAST_XSD` (the VAST_XSD environment variable), else from
`../shared/reference/vast_4.2.xsd` when that file exists.
"""

import copy
import functools
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string
from lxml import etree

from creatives import placeholders as ph
from creatives.files import asset_url
from creatives.models import Creative, CreativeKind
from creatives.verifications import for_vast

VAST_NAMESPACE = "http://www.iab.com/VAST"
# What serving answers when nothing fills a video or audio slot.
NO_AD = b'<VAST version="4.2"/>'
# The player events serving records, as `%%EVENT_URL%%?e=<event>`.
TRACKING_EVENTS = (
    "start", "firstQuartile", "midpoint", "thirdQuartile", "complete",
    "mute", "unmute", "pause", "resume", "skip",
)  # fmt: skip
# Until an Ad-ID is given, VAST 4.1+ asks for "unknown" in both places.
UNKNOWN_AD_ID = ("unknown", "unknown")
DEFAULT_XSD = Path(settings.BASE_DIR).parent / "shared" / "reference" / "vast_4.2.xsd"
# VAST macros such as [ERRORCODE]: valid in VAST URLs, invalid in xs:anyURI for libxml2.
_MACRO = re.compile(r"\[([A-Z][A-Z0-9_]*)\]")


def vast_duration(seconds: Decimal) -> str:
    """HH:MM:SS.mmm, the form VAST's Duration (xs:time) takes."""
    millis = int((seconds * 1000).to_integral_value())
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{ms:03d}"


def _clean(xml: str) -> str:
    return "\n".join(line.rstrip() for line in xml.splitlines() if line.strip()) + "\n"


def render_vast(creative: Creative) -> str:
    """The VAST 4.2 document of a video or audio creative, placeholders left for serving."""
    context: dict[str, Any] = {
        "creative": creative,
        "ad_type": "audio" if creative.kind == CreativeKind.AUDIO else "video",
        "error_url": f"{ph.ERROR_URL}?code=[ERRORCODE]",
        "imp_url": ph.IMP_URL,
        "click_url": ph.CLICK_URL,
        "event_url": ph.EVENT_URL,
        "events": TRACKING_EVENTS,
        "ad_serving_id": ph.AD_SERVING_ID,
        "verifications": for_vast(creative.ad_verifications),
    }
    if creative.is_wrapper:
        return _clean(render_to_string("creatives/vast_wrapper.xml", context))
    renditions = list(creative.renditions.all())
    context |= {
        "duration": vast_duration(creative.duration),
        "renditions": [
            {
                "id": r.pk,
                "mime_type": r.mime_type,
                "width": r.width,
                "height": r.height,
                "bitrate": r.bitrate,
                "codec": r.codec,
                "file_size": r.file_size,
                "url": asset_url(r.file.name or ""),
            }
            for r in renditions
        ],
        "universal_ad_id": ("ad-id.org", creative.universal_ad_id)
        if creative.universal_ad_id
        else UNKNOWN_AD_ID,
    }
    return _clean(render_to_string("creatives/vast_inline.xml", context))


# -- Validation against the official XSD -------------------------------------------------------


class VastSchemaMissing(RuntimeError):
    """No VAST 4.2 XSD was found: set VAST_XSD to its path."""


def xsd_path() -> Path | None:
    configured = getattr(settings, "VAST_XSD", "")
    if configured:
        return Path(configured)
    return DEFAULT_XSD if DEFAULT_XSD.is_file() else None


@functools.cache
def _schema(path: Path) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(path), etree.XMLParser(no_network=True)))


def load_schema() -> etree.XMLSchema:
    path = xsd_path()
    if path is None or not path.is_file():
        raise VastSchemaMissing(
            f"No VAST 4.2 XSD at {path or DEFAULT_XSD}: set VAST_XSD to the path of the "
            "official vast_4.2.xsd (it is not shipped with this repository)."
        )
    return _schema(path)


def _as_schema_sees_it(root: etree._Element) -> etree._Element:
    """A copy in the XSD's target namespace, with VAST macros percent-encoded.

    The XSD qualifies every element with http://www.iab.com/VAST while real VAST has no
    namespace; and libxml2 refuses [MACRO] in xs:anyURI although VAST puts macros in URLs.
    """
    doc = copy.deepcopy(root)
    for element in doc.iter():
        if not isinstance(element.tag, str):
            continue  # comments and processing instructions
        if not element.tag.startswith("{"):
            element.tag = f"{{{VAST_NAMESPACE}}}{element.tag}"
        if element.text and _MACRO.search(element.text):
            element.text = _MACRO.sub(r"%5B\1%5D", element.text)
    etree.cleanup_namespaces(doc)
    return doc


def validate_vast(xml: bytes) -> list[str]:
    """Problems with a VAST document against the official VAST 4.2 XSD; empty when valid.

    Raises VastSchemaMissing when no XSD is available.
    """
    schema = load_schema()
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    try:
        root = etree.fromstring(xml, parser)
    except etree.XMLSyntaxError as exc:
        return [str(exc.msg)]  # names the line and column
    if schema.validate(_as_schema_sees_it(root)):
        return []
    return [
        f"line {error.line}: {error.message.replace('{' + VAST_NAMESPACE + '}', '')}"
        for error in schema.error_log
    ]
