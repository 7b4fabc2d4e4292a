"""The creative preview page, and the demo's media files with the headers a CDN would send."""

import json
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, render
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.static import serve

from creatives import html5
from creatives import placeholders as ph
from creatives.files import PREFIX, asset_url
from creatives.models import Creative, CreativeKind
from creatives.snapshot import creative_snap

# Widths a native creative is shown at: a phone's feed and a desktop column.
NATIVE_PREVIEW_WIDTHS = (320, 640)


def _frame(markup: str, width: int, height: int, label: str) -> dict[str, Any]:
    document = (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><style>html,body{margin:0}</style>'
        f"</head><body>{markup}</body></html>"
    )
    return {"srcdoc": document, "width": width, "height": height, "label": label}


@login_required
@xframe_options_sameorigin  # the admin's review page embeds it
def preview(request: HttpRequest, pk: int) -> HttpResponse:
    """The creative exactly as served (same markup, preview-safe URLs), in each of its sizes."""
    creative = get_object_or_404(Creative.objects.for_user(request.user).for_rendering(), pk=pk)
    snap = creative_snap(creative)
    values = ph.preview_values(creative.click_url)
    markup = ph.substitute(snap.markup, values)
    frames: list[dict[str, Any]] = []
    players: list[dict[str, Any]] = []
    document = ""
    if creative.kind in (CreativeKind.IMAGE, CreativeKind.HTML5):
        frames.append(_frame(markup, creative.width, creative.height, creative.size))
    elif creative.kind == CreativeKind.NATIVE:
        for width in NATIVE_PREVIEW_WIDTHS:
            height = (
                round(width * creative.height / creative.width) + 140 if creative.width else 400
            )
            frames.append(_frame(markup, width, height, f"{width} px wide"))
        document = json.dumps(json.loads(ph.substitute(snap.native, values)), indent=2)
    else:
        document = markup
        for r in creative.renditions.all():
            players.append(
                {
                    "url": asset_url(r.file.name or ""),
                    "mime_type": r.mime_type,
                    "width": r.width,
                    "height": r.height,
                    "label": f"{r.original_name} · {r.mime_type} · "
                    + (f"{r.width}x{r.height} · " if r.width else "")
                    + f"{r.bitrate} kbit/s · {r.duration} s",
                }
            )
    return render(
        request,
        "creatives/preview.html",
        {
            "creative": creative,
            "snap": snap,
            "frames": frames,
            "players": players,
            "document": document,
            "sandbox": html5.SANDBOX,
            "is_video": creative.kind == CreativeKind.VIDEO,
        },
    )


def serve_media(request: HttpRequest, path: str) -> HttpResponseBase:
    """Uploaded files, for the demo (a CDN serves them in production) with a CDN's headers."""
    response = serve(request, path, document_root=settings.MEDIA_ROOT)
    if path.startswith(f"{PREFIX}/"):
        # Content-hashed names never change content: cache for a year. Players and HTML5
        # creatives fetch from other origins.
        response["Cache-Control"] = settings.CREATIVES_CACHE_CONTROL
        response["Access-Control-Allow-Origin"] = "*"
        response["X-Content-Type-Options"] = "nosniff"
        # Creatives are always framed (publisher pages, previews): X-Frame-Options would
        # leave the frame blank. The sandbox CSP below is what confines an HTML page.
        setattr(response, "xframe_options_exempt", True)  # noqa: B010 (not in the stubs)
        if path.lower().endswith(html5.HTML_SUFFIXES):
            # Opened directly rather than in the ad's frame, a page is still sandboxed: it
            # never runs with this site's origin.
            response["Content-Security-Policy"] = f"sandbox {html5.SANDBOX}"
    return response
