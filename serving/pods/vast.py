"""The VAST 4.2 ad pod: each ad's own VAST document (ours or a buyer's) merged into one
document, its `<Ad>` elements numbered with `sequence` in the pod's order (VAST 4.2 §3.2:
ads with a sequence are a pod, played in that order).

Each `<Ad>` is taken as it was rendered for its decision (its own signed impression, error
and tracking URLs, its own AdServingId), so every ad of the pod is tracked and billed like a
single video ad. CDATA sections are kept as they are, so signed URLs stay unescaped. A buyer's
document that does not parse, or has no `<Ad>`, is left out of the pod (its decision is
recorded, but nothing plays, and no impression is ever counted for it).
"""

from collections.abc import Sequence

from lxml import etree

# No entities, no network, CDATA kept: markup from buyers is not trusted.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, strip_cdata=False)
VERSION = "4.2"


def pod_vast(markups: Sequence[str]) -> bytes:
    """One VAST document holding the first `<Ad>` of each markup, numbered 1, 2, ..."""
    root = etree.Element("VAST", version=VERSION)
    sequence = 0
    for markup in markups:
        ad = _first_ad(markup)
        if ad is None:
            continue
        sequence += 1
        ad.set("sequence", str(sequence))
        root.append(ad)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _first_ad(markup: str) -> etree._Element | None:
    try:
        doc = etree.fromstring(markup.encode(), _PARSER)
    except etree.XMLSyntaxError:
        return None
    if not isinstance(doc.tag, str) or doc.tag != "VAST":
        return None
    return doc.find("Ad")
