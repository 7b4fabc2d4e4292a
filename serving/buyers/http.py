"""The buyer pool's HTTP client: one aiohttp session per serving process, keeping connections
to each buyer alive, resolving only the addresses the fetch policy allows, and reading an
answer only up to a size a bid response could have."""

import aiohttp

from serving.netguard import FetchPolicy, GuardedResolver

# An answer larger than this is not a bid response anyone meant to send.
MAX_RESPONSE_BYTES = 1 << 20
HEADERS = {"content-type": "application/json", "x-openrtb-version": "2.6"}


class TooLarge(Exception):
    pass


def new_session(fetch_policy: FetchPolicy, max_connections_per_buyer: int) -> aiohttp.ClientSession:
    """Call it inside the running loop: aiohttp binds a session to its loop."""
    connector = aiohttp.TCPConnector(
        limit=0,  # no global cap: each buyer has its own below
        limit_per_host=max_connections_per_buyer,
        ttl_dns_cache=300,
        keepalive_timeout=30,
        resolver=GuardedResolver(fetch_policy),
    )
    return aiohttp.ClientSession(
        connector=connector,
        # Cookies a buyer sets belong to one user; never replay them to the next.
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None),  # each call sets its own
    )


async def read_limited(response: aiohttp.ClientResponse) -> bytes:
    """The body, or `TooLarge` past MAX_RESPONSE_BYTES."""
    if (response.content_length or 0) > MAX_RESPONSE_BYTES:
        raise TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)
