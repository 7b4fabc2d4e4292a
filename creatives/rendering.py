"""Rendering creatives into the markup the serving snapshot carries."""

from django.conf import settings
from django.template.loader import render_to_string

from creatives.models import Creative

CLICK_URL = "%%CLICK_URL%%"
IMP_URL = "%%IMP_URL%%"


def asset_url(name: str) -> str:
    """The public URL of a stored file, on the CDN base."""
    return f"{settings.CDN_BASE_URL}/{name}"


def render_markup(creative: Creative) -> str:
    """HTML for one creative, with click and impression URLs left as macros for serving."""
    return render_to_string(
        "creatives/image.html",
        {
            "creative": creative,
            "image_url": asset_url(creative.image.name or ""),
            "click_url": CLICK_URL,
            "imp_url": IMP_URL,
        },
    ).strip()
