"""Rendering creatives into the markup the serving snapshot carries.

Markup keeps the placeholders of `creatives.placeholders` for serving to fill in. Banner
markup (image, HTML5) and native's HTML form are HTML; video and audio are VAST 4.2
(`creatives.vast`); native also has its OpenRTB Native 1.2 JSON form (`render_native_json`).
"""

import json
from typing import Any
from urllib.parse import quote

from django.template.loader import render_to_string

from creatives import html5
from creatives import placeholders as ph
from creatives.files import asset_url
from creatives.models import Creative, CreativeKind
from creatives.vast import render_vast

__all__ = ["asset_url", "render_markup", "render_native_json"]


def _beacon(code: int) -> str:
    return f"new Image().src='{ph.ERROR_URL}?code={code}'"


ON_IMAGE_ERROR = f"this.onerror=null;{_beacon(ph.ERROR_NOT_FOUND)}"
# The frame counts as loaded when its own document says so (html5.LOADED_MESSAGE): its load
# event also fires for the error page of a refused or failed load. Both the frame's onload and
# the watchdog start listening and then ask the frame (PING_MESSAGE), so the answer is heard
# whichever comes first: the frame's load, its load event here, or the impression pixel.
# Markup a publisher inserts with innerHTML runs attribute handlers, never script elements;
# in a handler a bare addEventListener is the element's, hence window.addEventListener.
_LISTEN = (
    "if(!f.getAttribute('data-listening')){f.setAttribute('data-listening','1');"
    "window.addEventListener('message',function(e){if(e.source===f.contentWindow&&e.data==="
    f"'{html5.LOADED_MESSAGE}')f.setAttribute('data-loaded','1')}})}}"
    f"try{{f.contentWindow.postMessage('{html5.PING_MESSAGE}','*')}}catch(e){{}}"
)
FRAME_LISTENER = f"var f=this;{_LISTEN}"
# Armed by the impression pixel: a frame that has not loaded in time is a render failure.
FRAME_WATCHDOG = (
    f"var f=this.previousSibling;{_LISTEN};setTimeout(function(){{if(!f.getAttribute("
    f"'data-loaded')){_beacon(ph.ERROR_TIMEOUT)}}},{ph.HTML5_LOAD_TIMEOUT_MS})"
)
# VAST macros mean nothing outside a video player: in HTML, serving's cache buster stands in.
HTML_MACROS = {"[CACHEBUSTING]": ph.CACHEBUSTER}


def bundle_entry_url(creative: Creative) -> str:
    return asset_url(f"{creative.bundle_root}/{quote(creative.entry_file)}")


def _common(creative: Creative) -> dict[str, Any]:
    return {
        "width": creative.width,
        "height": creative.height,
        "click_url": ph.CLICK_URL,
        "imp_url": ph.IMP_URL,
        "on_error": ON_IMAGE_ERROR,
        "event_url": ph.EVENT_URL,
        "viewability": ph.VIEWABILITY,
    }


def _render_image(creative: Creative) -> str:
    return render_to_string(
        "creatives/image.html",
        _common(creative)
        | {
            "image_url": asset_url(creative.image.name or ""),
            "alt": creative.alt_text or creative.name,
        },
    )


def _render_html5(creative: Creative) -> str:
    context = _common(creative) | {
        "sandbox": html5.SANDBOX,
        "watchdog": f"{FRAME_WATCHDOG};{ph.VIEWABILITY}",
        "listener": FRAME_LISTENER,
    }
    if creative.html_tag:
        tag = ph.substitute(creative.html_tag, HTML_MACROS)
        context["srcdoc"] = render_to_string(
            "creatives/html5_document.html",
            {
                "csp": html5.content_security_policy(creative.secure),
                "reporter": html5.error_reporter(f"'{ph.ERROR_URL}'"),
                "tag": tag,
            },
        ).strip()
    else:
        # The click and error URLs ride in the frame's query string (clickTag is the name
        # HTML5 authoring tools read); serving's signed URLs are URL-safe.
        context["frame_src"] = (
            f"{bundle_entry_url(creative)}?clickTag={ph.CLICK_URL}&errorUrl={ph.ERROR_URL}"
        )
    return render_to_string("creatives/html5.html", context)


def _native_context(creative: Creative) -> dict[str, Any]:
    return _common(creative) | {
        "image_url": asset_url(creative.image.name or ""),
        "title": creative.title,
        "body": creative.body,
        "call_to_action": creative.call_to_action,
        "sponsored_by": creative.sponsored_by,
        # Native 1.2 event 2 (viewable-mrc50), fired by the renderer that measures it.
        "viewable_url": f"{ph.EVENT_URL}?e=viewable",
    }


def render_native_json(creative: Creative) -> str:
    """The OpenRTB Native 1.2 response object, compact, with the placeholders."""
    text = render_to_string("creatives/native.json", _native_context(creative))
    # Rendered from a readable template, shipped compact; parsing also proves it is JSON.
    # < and > are escaped so the JSON is safe inside an HTML script element too.
    compact = json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)
    return compact.replace("<", "\\u003c").replace(">", "\\u003e")


def render_markup(creative: Creative) -> str:
    """The markup serving returns for one creative, with the placeholders left in."""
    if creative.kind == CreativeKind.IMAGE:
        html = _render_image(creative)
    elif creative.kind == CreativeKind.HTML5:
        html = _render_html5(creative)
    elif creative.kind == CreativeKind.NATIVE:
        html = render_to_string("creatives/native.html", _native_context(creative))
    else:
        return render_vast(creative)
    return html.strip()
