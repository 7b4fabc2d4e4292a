"""Open Measurement verification scripts a video or audio creative carries, passed through
into our VAST as `<AdVerifications>` (VAST 4.1+, on the InLine or the Wrapper).

A creative's `ad_verifications` is a JSON list, one object per vendor:
`{"vendor": "company.com-omid", "javascript_url": "https://...", "api_framework": "omid",
"browser_optional": false, "parameters": "..."}` (vendor and javascript_url required).
"""

import re
from typing import Any
from urllib.parse import urlsplit

MAX_VERIFICATIONS = 5
MAX_URL_CHARS = 2000
MAX_PARAMETER_CHARS = 4000
FIELDS = {"vendor", "javascript_url", "api_framework", "browser_optional", "parameters"}
# VAST's recommended "[domain]-[useCase]" and plain names alike; nothing to escape.
_VENDOR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
_FRAMEWORK = re.compile(r"^[A-Za-z0-9._-]{1,30}$")
_UNSAFE_IN_URL = re.compile(r"[\"'<>\\^`{|}\s]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def verification_problems(value: Any) -> list[str]:
    """What is wrong with an `ad_verifications` value; empty when it can be served."""
    if not isinstance(value, list):
        return ["Give a JSON list of verification objects."]
    if len(value) > MAX_VERIFICATIONS:
        return [f"At most {MAX_VERIFICATIONS} verifications; {len(value)} given."]
    problems: list[str] = []
    for n, item in enumerate(value, 1):
        problems += [f"Verification {n}: {p}" for p in _problems(item)]
    return problems


def _problems(item: Any) -> list[str]:
    if not isinstance(item, dict):
        return ["give an object with vendor and javascript_url."]
    problems = [f"unknown field {name!r}." for name in sorted(set(item) - FIELDS)]
    vendor = item.get("vendor")
    if not isinstance(vendor, str) or not _VENDOR.match(vendor):
        problems.append(
            "vendor is required: up to 100 letters, digits, '.', '_', ':' or '-' "
            "(VAST recommends domain-useCase, like company.com-omid)."
        )
    url = item.get("javascript_url")
    if not isinstance(url, str) or not url:
        problems.append("javascript_url is required.")
    elif len(url) > MAX_URL_CHARS:
        problems.append(f"javascript_url is over {MAX_URL_CHARS} characters.")
    elif urlsplit(url).scheme.lower() != "https" or not urlsplit(url).hostname:
        problems.append(f"javascript_url must be an https URL; {url[:100]} is not.")
    elif _UNSAFE_IN_URL.search(url):
        problems.append("javascript_url has characters to percent-encode.")
    framework = item.get("api_framework", "omid")
    if not isinstance(framework, str) or not _FRAMEWORK.match(framework):
        problems.append("api_framework is up to 30 letters, digits, '.', '_' or '-' (omid).")
    if not isinstance(item.get("browser_optional", False), bool):
        problems.append("browser_optional is true or false.")
    parameters = item.get("parameters", "")
    if not isinstance(parameters, str):
        problems.append("parameters is a string (the vendor's VerificationParameters).")
    elif len(parameters) > MAX_PARAMETER_CHARS:
        problems.append(f"parameters is over {MAX_PARAMETER_CHARS} characters.")
    elif _CONTROL.search(parameters):
        problems.append("parameters has control characters, which XML cannot carry.")
    return problems


def for_vast(value: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The verifications as the VAST templates read them, defaults filled in."""
    return [
        {
            "vendor": item["vendor"],
            "javascript_url": item["javascript_url"],
            "api_framework": item.get("api_framework", "omid"),
            "browser_optional": "true" if item.get("browser_optional") else "false",
            "parameters": item.get("parameters", ""),
        }
        for item in value
    ]
