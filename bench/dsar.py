"""Data-subject request benchmark: access and erasure over a million stored events.

Run: .venv/bin/python bench/dsar.py [--events 1000000]

Redis: REDIS_URL when set, otherwise a private embedded Redis (the one `bin/test` uses) started
for the run and stopped after it. Everything is written under a random key prefix and deleted
at the end; the database is a temporary SQLite file.

The stream is filled the way serving fills it: one entry per ad request (one "req" event per
slot, 1-3 slots, plus 0-2 "loss" events; the pseudonymous id, truncated IP and consent ledger
on the first event, for the 60 % of requests whose consent allows ids), and one entry per
impression for about a third of them (with its de-duplication key, so that the sweep for
other keys named after a pseudonym has a realistic keyspace to scan). Two subjects, A and B,
each own about 1 in 10,000 events; 50,000 other users share the rest, and 10,000 of them and
both subjects have a frequency-cap hash.
Ingestion is taken to have rolled up the first half of the stream, so erasure both deletes
(rolled up) and replaces with anonymous copies (not yet rolled up).

Each phase runs once for A, timed, and once for B under tracemalloc (which slows Python
down), for its peak of traced memory. "max RSS" is the process's peak resident size after
the timed run (ru_maxrss; it only grows).
"""

import argparse
import os
import random
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

from adsplatform.launch import start_embedded_redis, stop  # noqa: E402
from bench.common import (  # noqa: E402
    MIB,
    configure,
    delete_keys,
    timed_and_traced,
)

OTHER_USERS = 50_000
SUBJECT_SHARE = 1 / 10_000  # of all events, per subject
BATCH = 5_000
Row = tuple[str, int, int, float, float, float]  # phase, events found, entries, s, peak, RSS


def fill(total_events: int, subjects: dict[str, str]) -> tuple[int, dict[str, int], str]:
    """Write about `total_events` events; returns (entries written, events per subject, the
    id of an entry about halfway)."""
    from django.conf import settings
    from django_redis import get_redis_connection

    from serving.events import Event, encode_events
    from serving.keys import RedisKeys

    client, keys = get_redis_connection("default"), RedisKeys(settings.REDIS_KEY_PREFIX)
    rng = random.Random(7)
    users = [secrets.token_urlsafe(16) for _ in range(OTHER_USERS)]
    # A request averages about 3.3 events with its impression: pick the subjects' requests so
    # that each owns SUBJECT_SHARE of the events.
    subject_chance = SUBJECT_SHARE * 3.33 / 3
    names = list(subjects)
    owned = dict.fromkeys(names, 0)
    written = entries = 0
    middle = ""
    now_ms = int(time.time() * 1000)
    pipe = client.pipeline(transaction=False)
    while written < total_events:
        ts = now_ms - (total_events - written)  # one event a millisecond, oldest first
        roll, owner = rng.random(), ""
        for n, name in enumerate(names):
            if roll < subject_chance * (n + 1):
                owner = name
                break
        user = subjects[owner] if owner else ""
        if not owner and rng.random() < 0.6:
            user = users[rng.randrange(OTHER_USERS)]
        li = rng.randrange(1, 10_000)
        rid = secrets.token_hex(8)
        events = [
            Event(t="req", ts=ts, pl=rng.randrange(1, 20), li=li, cp=li // 100, adv=li // 1000,
                  cr=li * 3, d=rid)
            for _ in range(rng.randint(1, 3))
        ]  # fmt: skip
        events[0] = Event(
            t="req", ts=ts, pl=events[0].pl, li=li, cp=li // 100, adv=li // 1000, cr=li * 3,
            d=rid, u=user, ip=f"203.0.{rng.randrange(256)}.0" if user else "",
            cs="gdpr=1 tcf=valid p2=yes p34=yes → personalised" if user else "→ contextual",
        )  # fmt: skip
        events += [
            Event(t="loss", ts=ts, pl=events[0].pl, li=rng.randrange(1, 10_000), d=rid, r="outbid")
            for _ in range(rng.randint(0, 2))
        ]
        pipe.xadd(keys.events, {"v": encode_events(events)})
        entries += 1
        written += len(events)
        if owner:
            owned[owner] += len(events)
        if rng.random() < 0.33:
            imp = Event(t="imp", ts=ts + 1, pl=events[0].pl, li=li, cp=li // 100, cpm=1_500_000,
                        d=f"{rid}-0")  # fmt: skip
            pipe.xadd(keys.events, {"v": encode_events([imp])})
            pipe.set(keys.seen("imp", imp.d), 1, ex=7200)  # the dedupe mark, as serving sets
            entries += 1
            written += 1
        if len(pipe) >= BATCH:
            ids = pipe.execute()
            if not middle and written >= total_events // 2:
                middle = ids[-1].decode()
    pipe.execute()
    for user in users[:10_000] + list(subjects.values()):
        pipe.hset(keys.frequency(user), mapping={"5:day:20270301": 1, "7:lifetime:0": 2})
    pipe.execute()
    return entries, owned, middle


def measure(label: str, timed: Callable[[], Any], traced: Callable[[], Any]) -> Row:
    from compliance.models import DataSubjectRequest

    pk, seconds, rss, peak = timed_and_traced(timed, traced)
    request = DataSubjectRequest.objects.get(pk=pk)
    counts = request.counts
    found = counts.get("events", 0) + counts.get("events_deleted", 0)
    found += counts.get("events_anonymised", 0)
    print(
        f"  {label:<10} {found:>5} events of the subject in {request.entries_scanned:,} entries "
        f"{seconds:6.2f} s  traced peak {peak:6.1f} MiB  max RSS {rss:6.1f} MiB  {counts}",
        flush=True,
    )
    return label, found, request.entries_scanned, seconds, peak, rss


def run(total_events: int) -> list[Row]:
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from compliance.dsar import redis_client, redis_keys, run_request
    from compliance.models import RequestKind, RequestStatus
    from compliance.pseudonym import Pseudonymiser
    from compliance.services import file_request
    from reporting.models import StreamWatermark

    call_command("migrate", verbosity=0)
    officer = get_user_model().objects.create_user("bench-dpo", is_staff=True)
    pseudonymiser = Pseudonymiser.from_settings()
    raw = {"A": "subject-a@example.org", "B": "subject-b@example.org"}
    subjects = {name: pseudonymiser.pseudonym(raw_id, time.time()) for name, raw_id in raw.items()}

    print(f"dsar benchmark: {total_events:,} events, scan chunk {settings.DSAR_SCAN_CHUNK:,}")
    started = time.perf_counter()
    entries, owned, middle = fill(total_events, subjects)
    client, stream = redis_client(), redis_keys().events
    memory: Any = client.info("memory")
    print(
        f"  filled {entries:,} entries in {time.perf_counter() - started:.1f} s; subject A owns "
        f"{owned['A']} events, B {owned['B']}; Redis uses {memory['used_memory'] / MIB:.0f} MiB",
        flush=True,
    )
    StreamWatermark.objects.create(stream=stream, last_id=middle)

    def job(kind: str, name: str) -> Callable[[], int]:
        def phase() -> int:
            request = file_request(kind=kind, subject_kind="user_id", subject_id=raw[name],
                                   by=officer)  # fmt: skip
            assert run_request(request.pk) == RequestStatus.DONE
            return request.pk

        return phase

    return [
        measure("access", job(RequestKind.ACCESS, "A"), job(RequestKind.ACCESS, "B")),
        measure("erasure", job(RequestKind.ERASURE, "A"), job(RequestKind.ERASURE, "B")),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    procs = []
    if not os.environ.get("REDIS_URL"):
        url, proc = start_embedded_redis(f"redis-bench-{os.getpid()}")
        procs.append(proc)
        os.environ["REDIS_URL"] = url
    try:
        with tempfile.TemporaryDirectory(prefix="bench-dsar-") as tmp:
            prefix = configure(Path(tmp))
            try:
                results = run(args.events)
            finally:
                from django_redis import get_redis_connection

                delete_keys(get_redis_connection("default"), prefix)
    finally:
        if procs:
            stop(procs)
            for leftover in (ROOT / "var").glob(f"redis-bench-{os.getpid()}.*"):
                leftover.unlink(missing_ok=True)
    header = ("phase", "found", "entries", "seconds", "traced MiB", "RSS MiB")
    print("\n{:<10} {:>6} {:>9} {:>8} {:>11} {:>8}".format(*header))
    for label, found, scanned, seconds, peak, rss in results:
        print(f"{label:<10} {found:>6} {scanned:>9,} {seconds:>8.2f} {peak:>11.1f} {rss:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
