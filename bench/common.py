"""What the benchmark scripts share."""

import contextlib
import os
import resource
import secrets
import shutil
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def configure(tmp: Path) -> str:
    """Environment for Django (and any server started from here), set before settings load.

    A SQLite file in `tmp`, Redis db 11 unless REDIS_URL says otherwise, and a key prefix of
    this run's own, so cleaning up touches nothing else. Returns the prefix.
    """
    prefix = f"bench:{secrets.token_hex(4)}:"
    (tmp / "static").mkdir(parents=True, exist_ok=True)  # no warning from WhiteNoise
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/11")
    for name in ("DJANGO_SECRET_KEY", "SERVING_SIGNING_KEY", "PSEUDONYM_SECRET"):
        os.environ.setdefault(name, secrets.token_urlsafe(48))
    os.environ.update(
        DATABASE_URL=f"sqlite:///{tmp / 'bench.sqlite3'}",
        REDIS_KEY_PREFIX=prefix,
        MEDIA_ROOT=str(tmp / "media"),
        STATIC_ROOT=str(tmp / "static"),
        DJANGO_DEBUG="false",
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="adsplatform.settings",
    )
    return prefix


MIB = 1024 * 1024


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def timed_and_traced[T](
    timed: Callable[[], T], traced: Callable[[], object]
) -> tuple[T, float, float, float]:
    """Run `timed` for the clock and `traced` (the same work on other data) under tracemalloc,
    whose bookkeeping would slow the timed run: (timed's value, seconds, max RSS MiB after the
    timed run, traced peak MiB)."""
    started = time.perf_counter()
    value = timed()
    seconds = time.perf_counter() - started
    rss = max_rss_mib()
    tracemalloc.start()
    try:
        traced()
        peak = tracemalloc.get_traced_memory()[1] / MIB
    finally:
        tracemalloc.stop()
    return value, seconds, rss, peak


def delete_keys(client: Any, prefix: str) -> None:
    """Delete every key of a run's prefix (a redis-py client), in slices of a thousand."""
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])


@contextlib.contextmanager
def django_bench(name: str) -> Iterator[Path]:
    """For an in-process benchmark: a temporary directory, the embedded Redis (or REDIS_URL),
    `configure`, Django set up and migrated. On the way out every key of the run's prefix
    is deleted, the embedded Redis stopped and the directory removed."""
    from bench.serve.processes import Redis, delete_prefix, stop

    tmp = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    redis = None
    prefix = ""
    try:
        redis = Redis.start(tmp)
        os.environ["REDIS_URL"] = redis.url
        prefix = configure(tmp)
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        yield tmp
    finally:
        if redis is not None:
            with contextlib.suppress(Exception):
                delete_prefix(redis, prefix)
            if redis.proc is not None:
                stop(redis.proc)
        shutil.rmtree(tmp, ignore_errors=True)


def install_model(weights: int) -> None:
    """A promoted pCTR model of `weights` random non-zero weights over 2**18 slots, as the
    training would promote one (docs/learning.md); Django set up and migrated first. The next
    snapshot published carries it."""
    import random
    from datetime import UTC, datetime

    from reporting.learning.registry import promote
    from reporting.models import ModelVersion
    from serving.pctr import FEATURE_SET, CtrModel, encode_model

    rng = random.Random(5)
    slots = rng.sample(range(1 << 18), weights)
    model = CtrModel(
        0, FEATURE_SET, 18, -6.0, slots, [rng.gauss(0, 0.3) for _ in slots], base_ctr=0.002
    )
    start = datetime(2027, 1, 1, tzinfo=UTC)
    version = ModelVersion.objects.create(
        feature_set=FEATURE_SET, train_start=start, train_end=start, holdout_start=start,
        holdout_end=start, metrics={}, weights=encode_model(model),
    )  # fmt: skip
    promote(version)


@contextlib.contextmanager
def postgres_bench(name: str, script: str) -> Iterator[str]:
    """For an ingest benchmark: Postgres from DATABASE_URL (the script exits naming what is
    missing otherwise), a redis-server of its own in a temporary directory, Django set up
    against both. Yields the Redis URL; the server is stopped on the way out."""
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit(f"{script} needs DATABASE_URL=postgres://... (a migrated database)")
    from tests.faults.services import PrivateRedis

    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        server = PrivateRedis(Path(tmp), appendonly=False)
        server.start()
        try:
            os.environ["REDIS_URL"] = server.url
            os.environ.setdefault("DJANGO_SETTINGS_MODULE", "adsplatform.settings")
            os.environ.setdefault("LOG_LEVEL", "WARNING")
            import django

            django.setup()
            yield server.url
        finally:
            server.stop()
