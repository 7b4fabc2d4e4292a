"""Fleet-wide limits (`serving.limits`): several serving processes, each a real `ServingApp`
in a process of its own (`tests/serving/fleet_process.py`), on one Redis, calling a real
loopback buyer: the buyer's QPS cap, a placement key's rate limit and a buyer's circuit hold
for the fleet, not per process."""

import json
import math
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from redis import Redis

from campaigns.snapshot import publish_snapshot
from serving.keys import RedisKeys
from serving.models import Buyer
from tests.factories import make_campaign, make_line_item, make_placement
from tests.serving.buyer_server import Behaviour, LoopbackBuyer

pytestmark = pytest.mark.django_db

# From all processes ready to their common start: at least this long, to a whole second.
LEAD = 0.5


@pytest.fixture
def placement_key() -> str:
    placement = make_placement()
    make_line_item(make_campaign(), "0.50")
    publish_snapshot()
    return placement.key


@pytest.fixture
def buyer() -> Iterator[LoopbackBuyer]:
    with LoopbackBuyer(Behaviour(bid={"price": "3.00"})) as server:
        yield server


def add_buyer(server: LoopbackBuyer, **fields: Any) -> Buyer:
    buyer = Buyer.objects.create(
        name="fleet buyer", endpoint=server.endpoint, timeout_ms=400, currency="USD", **fields
    )
    publish_snapshot()
    return buyer


def run_fleet(specs: list[dict[str, Any]]) -> tuple[float, list[list[tuple[float, int]]]]:
    """Start one serving process per spec and, once all are ready, have them send from the
    same whole second; return that second and each process's (send time, status) list."""
    procs = []
    for n, spec in enumerate(specs):
        args = {"page": f"https://news.example/p{n}", **spec}
        command = [sys.executable, "-m", "tests.serving.fleet_process", json.dumps(args)]
        pipe = subprocess.PIPE
        procs.append(subprocess.Popen(command, stdin=pipe, stdout=pipe, stderr=pipe, text=True))
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.strip() == "ready", proc.stderr.read()[-3000:] if proc.stderr else line
        start = float(math.ceil(time.time() + LEAD))
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(f"{start}\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err[-3000:]
            results.append(json.loads(out.strip().splitlines()[-1])["results"])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    return start, results


def per_second(times: list[float], start: float) -> Counter[int]:
    return Counter(int(t - start) for t in times)


def test_a_buyers_qps_cap_holds_across_three_serving_processes(
    placement_key: str, buyer: LoopbackBuyer
) -> None:
    cap = 30
    add_buyer(buyer, qps_cap=cap)

    # given three processes each offering 25 ad requests a second (75 in all), for 5 s
    start, results = run_fleet([{"placement": placement_key, "rate": 25, "seconds": 5}] * 3)

    # then the buyer got its cap per second from the fleet, not 3 x 30 nor 75
    assert all(status == 200 for proc in results for _, status in proc)
    calls = per_second([r.at for r in buyer.received()], start)
    by_process = Counter(r.body["site"]["page"][-1] for r in buyer.received())
    print(f"buyer calls per second: {sorted(calls.items())}; by process {by_process}")
    steady = [calls[s] for s in range(1, 5)]  # the first second has nothing claimed ahead
    assert max(steady) <= cap * 1.1
    assert abs(sum(steady) / len(steady) - cap) <= cap * 0.1
    assert len(by_process) == 3  # each process had its share


def test_a_keys_rate_limit_holds_across_two_serving_processes(placement_key: str) -> None:
    limit = 20
    # given two processes each offering the whole limit for 4 s
    start, results = run_fleet(
        [{"placement": placement_key, "rate": limit, "seconds": 4, "rate_limit": limit}] * 2
    )

    # then about the limit per second is served across both, the rest refused with 429
    statuses = Counter(status for proc in results for _, status in proc)
    served = per_second([t for proc in results for t, status in proc if status != 429], start)
    print(f"statuses {dict(statuses)}; served per second {sorted(served.items())}")
    assert set(statuses) == {200, 429}
    for second in range(4):
        assert abs(served[second] - limit) <= limit * 0.1, (second, served)
    # each process alone would have served all of its own 20 a second
    assert all(any(status == 429 for _, status in proc) for proc in results)


def test_a_buyers_circuit_opens_for_the_whole_fleet_on_its_error_rate(
    placement_key: str, redis_client: Redis
) -> None:
    # given a buyer failing two calls in three: never the five in a row that open one
    # process's own circuit, but a 67 % error rate across the fleet
    with LoopbackBuyer(Behaviour(statuses=(500, 500, 200))) as server:
        buyer = add_buyer(server)
        spec = {"placement": placement_key, "rate": 10, "seconds": 5, "breaker_min_calls": 20,
                "breaker_cooldown": 30}  # fmt: skip
        start, _ = run_fleet([spec, spec])
        received = sorted(r.at for r in server.received())

    # then the fleet opened it after about 20 calls and every process stopped calling soon
    # after (its next sync), though none saw five failures in a row
    print(f"buyer calls at {[round(t - start, 2) for t in received]}")
    assert 20 <= len(received) <= 50
    twentieth = received[19]
    assert received[-1] - twentieth <= 2.0
    assert received[-1] - start < 4.0  # and none in the last second of the run
    open_key = RedisKeys(settings.REDIS_KEY_PREFIX).buyer_breaker_open(buyer.pk)
    assert int(redis_client.pttl(open_key)) > 0
