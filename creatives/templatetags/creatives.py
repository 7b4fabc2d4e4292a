"""Filters for the VAST and native JSON templates."""

import json
from typing import Any

from django import template
from django.utils.safestring import SafeString, mark_safe

register = template.Library()


@register.filter
def cdata(value: Any) -> SafeString:
    """The value as a CDATA section: URLs with & and placeholders stay verbatim XML text."""
    text = str(value).replace("]]>", "]]]]><![CDATA[>")
    return mark_safe(f"<![CDATA[{text}]]>")  # noqa: S308 - CDATA cannot be closed from inside


@register.filter(name="json")
def json_value(value: Any) -> SafeString:
    """The value as a JSON literal (for JSON templates only: it is not HTML-escaped)."""
    return mark_safe(json.dumps(value, ensure_ascii=False))  # noqa: S308 - JSON, not HTML
