"""One serving process of a fleet test: a real `ServingApp` of its own (its own snapshot,
sink, buyer pool and Redis connections) in a process of its own, sending ad requests to
itself through ASGI at a steady rate, on the Redis and snapshot the test published. Once
its snapshot is loaded it prints "ready" and reads the wall-clock instant to start from on
standard input; at the end it prints one JSON line: each request's send time and status.

    python -m tests.serving.fleet_process '{"placement": "...", "rate": 40, "seconds": 4,
        "page": "https://news.example/p1", "rate_limit": 0}'

The environment is the test's (bin/test's secrets, REDIS_URL, REDIS_KEY_PREFIX).
"""

import asyncio
import dataclasses
import json
import os
import sys
import time
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "adsplatform.settings")
django.setup()

import httpx  # noqa: E402 - after Django's setup, which the app's settings need

from serving.app import ServingApp  # noqa: E402
from serving.config import ServingConfig  # noqa: E402

BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


async def send_all(spec: dict[str, Any]) -> list[tuple[float, int]]:
    config = dataclasses.replace(
        ServingConfig.from_settings(),
        fetch_allowed_networks=("127.0.0.0/8",),
        rate_limit=int(spec.get("rate_limit", 0)),
        buyer_breaker_min_calls=int(spec.get("breaker_min_calls", 20)),
        buyer_breaker_cooldown=float(spec.get("breaker_cooldown", 5.0)),
    )
    app = ServingApp(config)
    await app.startup()
    body = {
        "placement": spec["placement"],
        "slots": [{"id": "top", "sizes": ["300x250"]}],
        "site": {"domain": "news.example", "page": spec["page"]},
        "tmax": 500,
    }
    results: list[tuple[float, int]] = []
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://ads.test", headers={"user-agent": BROWSER}
    ) as client:

        async def one() -> None:
            sent = time.time()
            try:
                response = await client.post("/v1/ad", json=body)
                results.append((sent, response.status_code))
            except Exception:
                results.append((sent, 0))

        # Ready: the test answers with the instant every process starts from.
        print("ready", flush=True)
        start_at = float(await asyncio.to_thread(sys.stdin.readline))
        await asyncio.sleep(max(0.0, start_at - time.time()))
        interval = 1 / spec["rate"]
        tasks = []
        started = time.monotonic()
        for n in range(int(spec["rate"] * spec["seconds"])):
            await asyncio.sleep(max(0.0, started + n * interval - time.monotonic()))
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    await app.sink.drain()
    await app.shutdown()
    return results


def main() -> None:
    spec = json.loads(sys.argv[1])
    results = asyncio.run(send_all(spec))
    print(json.dumps({"results": results}))


if __name__ == "__main__":
    main()
