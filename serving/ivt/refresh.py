"""The refresh job's side of the data-center list (Celery, not the serving process).

It reads IVT_DATACENTER_FILE and every IVT_DATACENTER_URLS source (a path or an http(s)
URL): a text list (one prefix a line, `#` comments) or a cloud provider's published JSON
(AWS `ip_prefix`/`ipv6_prefix`, Google Cloud `ipv4Prefix`/`ipv6Prefix`, Azure service tags'
`addressPrefixes`). Only when every source loads and parses is the merged list published to
Redis (`RedisKeys.ivt_datacenter`, with a digest as its version) for the serving processes to
pick up; a source that fails changes nothing, so the last good copy stays in force.
"""

import hashlib
import json
import logging
from collections.abc import Iterator
from ipaddress import collapse_addresses
from typing import Any

from django.conf import settings
from redis import Redis

from adsplatform.sources import read_bounded
from serving.ivt.networks import parse_prefixes
from serving.keys import RedisKeys

log = logging.getLogger(__name__)

FETCH_TIMEOUT = 30.0
MAX_SOURCE_BYTES = 64 << 20  # the providers' JSON files are a few megabytes
JSON_PREFIX_KEYS = frozenset({"ip_prefix", "ipv6_prefix", "ipv4Prefix", "ipv6Prefix"})


class RangesError(ValueError):
    """A source of the data-center list cannot be used (nothing is published)."""


def _json_prefixes(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in JSON_PREFIX_KEYS and isinstance(item, str):
                yield item
            elif key == "addressPrefixes" and isinstance(item, list):
                yield from (p for p in item if isinstance(p, str))
            else:
                yield from _json_prefixes(item)
    elif isinstance(value, list):
        for item in value:
            yield from _json_prefixes(item)


def prefixes_of(data: bytes, source: str) -> str:
    """A source's prefixes as a text list; RangesError when it is neither format."""
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        raise RangesError(f"{source} is not UTF-8 text") from exc
    if text.lstrip().startswith(("{", "[")):
        try:
            text = "\n".join(_json_prefixes(json.loads(text)))
        except json.JSONDecodeError as exc:
            raise RangesError(f"{source} is not JSON: {exc}") from exc
    try:
        nets = parse_prefixes(text)
    except ValueError as exc:
        raise RangesError(f"{source}: {exc}") from exc
    if not nets:
        raise RangesError(f"{source} holds no prefix")
    return "\n".join(str(n) for n in nets)


def build_list(sources: list[str]) -> str:
    """The merged list of every source (collapsed, sorted), or RangesError / OSError."""
    texts = []
    for source in sources:
        data = read_bounded(
            source, limit=MAX_SOURCE_BYTES, timeout=FETCH_TIMEOUT, error=RangesError
        )
        texts.append(prefixes_of(data, source))
    nets = parse_prefixes("\n".join(texts))
    v4 = collapse_addresses(n for n in nets if n.version == 4)
    v6 = collapse_addresses(n for n in nets if n.version == 6)
    return "\n".join(str(n) for n in [*v4, *v6]) + "\n"


def refresh_datacenter_ranges(client: Redis, keys: RedisKeys) -> tuple[str, int]:
    """Publish the configured sources' list; (version, prefixes). Raises (and publishes
    nothing) when a source fails."""
    sources = [s for s in [settings.IVT_DATACENTER_FILE, *settings.IVT_DATACENTER_URLS] if s]
    if not sources:
        return "", 0
    text = build_list(sources)
    version = hashlib.sha256(text.encode()).hexdigest()[:16]
    client.hset(keys.ivt_datacenter, mapping={"text": text, "version": version})
    return version, text.count("\n")
