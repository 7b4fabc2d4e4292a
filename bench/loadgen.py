"""A small HTTP/1.1 load generator for when wrk is not installed.

Raw keep-alive connections on asyncio streams (an HTTP client library would be the bottleneck).
`bench/serving.py` runs it in its own process, pinned to the core the server does not use:

    python -m bench.loadgen SPEC.json  ->  prints [req/s, p50 ms, p99 ms, errors] as JSON

SPEC holds "port", "requests" (raw request texts, used in turn), "seconds", "warmup" and
"connections". Only 127.0.0.1 is contacted, and the run ends by itself.
"""

import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path


async def _read_response(reader: asyncio.StreamReader) -> int:
    lines = (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(b":") for x in lines[1:])}
    if headers.get(b"transfer-encoding") == b"chunked":
        while size := int((await reader.readline()).split(b";")[0], 16):
            await reader.readexactly(size + 2)
        await reader.readline()
    else:
        await reader.readexactly(int(headers.get(b"content-length", b"0")))
    return int(lines[0].split()[1])


async def run(
    port: int, reqs: list[bytes], seconds: float, warmup: float, connections: int
) -> list[float]:
    """Requests in turn on each connection; latencies are counted after the warm-up only."""
    latencies: list[float] = []
    errors = 0
    warm_until = time.perf_counter() + warmup
    stop_at = warm_until + seconds

    async def client(i: int) -> None:
        nonlocal errors
        while time.perf_counter() < stop_at:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                errors += 1
                await asyncio.sleep(0.05)
                continue
            try:
                while (started := time.perf_counter()) < stop_at:
                    writer.write(reqs[i % len(reqs)])
                    i += 1
                    status = await _read_response(reader)
                    if started >= warm_until:
                        latencies.append(time.perf_counter() - started)
                        errors += status // 100 != 2
            except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                errors += 1
            finally:
                writer.close()

    with contextlib.suppress(TimeoutError):  # a stuck server must not hold the run
        async with asyncio.timeout(warmup + seconds + 5):
            await asyncio.gather(*(client(n * 7) for n in range(connections)))
    lat = sorted(latencies) or [0.0]
    p50, p99 = (lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 for q in (0.5, 0.99))
    return [len(latencies) / seconds, p50, p99, errors]


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    reqs = [r.encode() for r in spec["requests"]]
    args = spec["port"], reqs, spec["seconds"], spec["warmup"], spec["connections"]
    with contextlib.suppress(KeyboardInterrupt):  # the parent reports the interruption
        print(json.dumps(asyncio.run(run(*args))))


if __name__ == "__main__":
    main()
