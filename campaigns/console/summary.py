"""A line item's targeting in words, for its page and the campaign page."""

from campaigns.console import choices
from campaigns.models import LineItem
from campaigns.validators import DEVICE_TYPES


def _words(items: list[str], limit: int = 8) -> str:
    shown = items[:limit]
    more = len(items) - len(shown)
    text = ", ".join(shown)
    return f"{text} and {more} more" if more else text


def targeting_summary(li: LineItem) -> list[str]:
    """Each targeting rule as a sentence; "anywhere" when nothing narrows delivery."""
    lines = [f"Sizes {_words(list(li.sizes))}"]
    placements = [str(p) for p in li.placements.all()]
    lines.append(f"On {_words(placements)}" if placements else "On every placement that sells them")
    names = choices.country_names()
    if li.countries:
        lines.append(f"In {_words([names.get(c, c) for c in li.countries])}")
    if li.regions:
        lines.append(f"Only in the regions {_words([choices.region_name(r) for r in li.regions])}")
    if not li.countries and not li.regions:
        lines.append("In every country")
    if li.device_types:
        lines.append(f"On {_words([DEVICE_TYPES[d].lower() for d in li.device_types])}")
    if li.channels:
        channel_labels = dict(choices.channels())
        lines.append(f"Through {_words([channel_labels[c].lower() for c in li.channels])}")
    if li.properties:
        lines.append(f"On the properties {_words(list(li.properties))}")
    for part in li.dayparts:
        days = ", ".join(choices.DAYS[d] for d in part["days"])
        lines.append(f"{days} from {part['start']} to {part['end']} (organisation time)")
    if li.keywords:
        lines.append(f"Pages about {_words(list(li.keywords))}")
    if li.negative_keywords:
        lines.append(f"Never next to {_words(list(li.negative_keywords))}")
    if li.segments:
        lines.append(f"People in the segments {_words(list(li.segments))}")
    if li.categories:
        labels = [choices.IAB_TIER1.get(c, c) for c in li.categories]
        lines.append(f"Content about {_words(labels)}")
    if li.frequency_caps:
        caps = ", ".join(f"{c['count']} per {c['period']}" for c in li.frequency_caps)
        lines.append(f"At most {caps} to one person")
    lines.append(
        "May serve to child-directed traffic"
        if li.child_safe
        else "Not shown to child-directed traffic"
    )
    return lines
