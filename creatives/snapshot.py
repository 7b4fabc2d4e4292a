"""A creative as the serving snapshot carries it (`serving.snapshot.CreativeSnap`).

The snapshot builder calls `creative_snap` for each creative of `servable_creatives()`.
Rendering reads the creative's advertiser (VAST <Advertiser>) and renditions (video and
audio): select and prefetch them (`Creative.objects.for_rendering()`, or
`creative__advertiser` / `creative__renditions` through assignments) to run no queries.
"""

from django.db.models import QuerySet

from creatives.models import Creative, CreativeKind
from creatives.rendering import render_markup, render_native_json
from creatives.units import whole_seconds
from serving.snapshot import CreativeSnap


def servable_creatives() -> QuerySet[Creative]:
    """Approved, not archived creatives: the only ones the snapshot may carry."""
    return Creative.objects.servable()


def creative_snap(creative: Creative) -> CreativeSnap:
    """Markup, format, size and the facts serving filters on, placeholders left for serving."""
    kind = creative.kind
    mimes: list[str] = []
    if kind in (CreativeKind.VIDEO, CreativeKind.AUDIO):
        for rendition in creative.renditions.all():
            if rendition.mime_type not in mimes:
                mimes.append(rendition.mime_type)
    # Image, video, audio and native assets are ours, on the CDN; HTML5 and VAST tags load
    # third-party resources, checked for http: on upload only when marked secure.
    secure = creative.secure if kind == CreativeKind.HTML5 or creative.is_wrapper else True
    return CreativeSnap(
        id=creative.pk,
        size="0x0" if kind == CreativeKind.AUDIO else creative.size,
        markup=render_markup(creative),
        click_url=creative.click_url,
        format=creative.serving_format,
        adomain=[creative.adomain] if creative.adomain else [],
        categories=list(creative.categories),
        secure=secure,
        duration=whole_seconds(creative.duration) if creative.duration else 0,
        mimes=mimes,
        native=render_native_json(creative) if kind == CreativeKind.NATIVE else "",
    )
