"""Reading an operator-configured source (a file path or an http(s) URL) with a size bound:
the reference rates and the Global Vendor List are both loaded this way."""

from pathlib import Path

import httpx


def read_bounded(source: str, *, limit: int, timeout: float, error: type[Exception]) -> bytes:
    """The bytes of `source`, at most `limit` of them; raises `error` naming what is wrong
    (a non-200 answer, too many bytes) or OSError (unreachable, missing file)."""
    if source.startswith(("http://", "https://")):
        # Redirects are not followed: the configured address is the one trusted.
        with (
            httpx.Client(timeout=timeout, follow_redirects=False) as client,
            client.stream("GET", source) as response,
        ):
            if response.status_code != 200:
                raise error(f"{source} answered HTTP {response.status_code}")
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > limit:
                    raise error(f"{source} sent more than {limit} bytes")
            return bytes(body)
    path = Path(source)
    if path.stat().st_size > limit:
        raise error(f"{source} is larger than {limit} bytes")
    return path.read_bytes()
