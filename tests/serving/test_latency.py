"""The buyer response-time histogram: buckets, merging and quantiles against distributions
whose quantiles are known."""

import math
import random

import pytest

from serving.latency import (
    FLOOR_MS,
    GROWTH,
    LAST,
    TIMEOUT,
    bucket_bounds,
    bucket_of,
    bucket_value,
    merge,
    quantile,
)

# A value read back from its bucket is within this factor of the truth (half a bucket,
# geometrically).
TOLERANCE = math.sqrt(GROWTH) - 1


def histogram(values: list[float]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for v in values:
        b = bucket_of(v)
        counts[b] = counts.get(b, 0) + 1
    return counts


def exact(values: list[float], q: float) -> float:
    """Nearest-rank quantile."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def test_every_value_falls_inside_its_buckets_bounds() -> None:
    for ms in (0.0, 0.1, 0.4999, 0.5, 0.51, 1.0, 7.3, 42.0, 99.9, 120.0, 999.0, 32_000.0):
        low, high = bucket_bounds(bucket_of(ms))
        assert low <= ms < high, ms
    assert bucket_of(10**9) == LAST
    assert bucket_of(FLOOR_MS) == 1
    assert TIMEOUT == LAST + 1


def test_a_bucket_is_read_back_within_half_its_width() -> None:
    for ms in (0.6, 3.3, 17.0, 80.0, 149.0, 2_500.0):
        assert abs(bucket_value(bucket_of(ms)) - ms) / ms <= TOLERANCE + 1e-12
    assert TOLERANCE < 0.045


@pytest.mark.parametrize(
    "name, draw",
    [
        ("uniform 10-200 ms", lambda r: r.uniform(10, 200)),
        ("exponential mean 40 ms", lambda r: r.expovariate(1 / 40) + 0.5),
        ("lognormal median 60 ms", lambda r: r.lognormvariate(math.log(60), 0.8)),
    ],
)
def test_quantiles_match_the_exact_ones_within_the_bucket_error(name: str, draw: object) -> None:
    rng = random.Random(15)
    values = [draw(rng) for _ in range(20_000)]  # type: ignore[operator]
    counts = histogram(values)
    for q in (0.5, 0.95, 0.99):
        got = quantile(counts, q)
        want = exact(values, q)
        assert got is not None
        assert abs(got - want) / want <= TOLERANCE + 1e-9, (name, q, got, want)


def test_known_small_distribution_exactly() -> None:
    # 100 answers: 50 at 10 ms, 45 at 50 ms, 4 at 200 ms, 1 at 1,000 ms.
    counts = histogram([10.0] * 50 + [50.0] * 45 + [200.0] * 4 + [1000.0])
    assert quantile(counts, 0.50) == bucket_value(bucket_of(10.0))
    assert quantile(counts, 0.95) == bucket_value(bucket_of(50.0))
    assert quantile(counts, 0.99) == bucket_value(bucket_of(200.0))
    assert quantile(counts, 1.0) == bucket_value(bucket_of(1000.0))


def test_merged_hours_give_the_quantiles_of_all_answers_not_a_mean_of_hours() -> None:
    rng = random.Random(7)
    quiet = [rng.uniform(5, 15) for _ in range(9_000)]  # a fast hour with most traffic
    slow = [rng.uniform(100, 300) for _ in range(1_000)]  # a slow hour
    merged = merge([histogram(quiet), histogram(slow)])
    assert merged == histogram(quiet + slow)
    p95 = quantile(merged, 0.95)
    assert p95 is not None
    assert abs(p95 - exact(quiet + slow, 0.95)) / exact(quiet + slow, 0.95) <= TOLERANCE
    # Averaging the two hours' p95 would say about 153 ms; the true p95 is in the slow hour.
    assert p95 > 140


def test_timeouts_count_and_a_quantile_among_them_is_a_timeout() -> None:
    counts = histogram([20.0] * 97)
    counts[TIMEOUT] = 3
    assert quantile(counts, 0.95) == bucket_value(bucket_of(20.0))
    assert quantile(counts, 0.99) == math.inf
    assert quantile({}, 0.5) is None
