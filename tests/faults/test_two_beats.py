"""Two `celery beat` processes at once (a standby beat host): each periodic task is still sent
once per period (adsplatform/beat.py claims each period's slot in Redis), and killing the
beat that was sending leaves the other sending pacing on time.

Real beats against a private redis-server and no worker: the broker's queue keeps every
message the beats sent, so the test counts them per task (a worker runs each message once:
tasks acknowledge late and are redelivered only when a worker dies).
"""

import json
import signal
import time
from collections import Counter
from pathlib import Path

from django.conf import settings
from redis import Redis

from tests.faults.services import LoggedProcess, celery_beat_args, private_redis, project_env

PACING = "campaigns.tasks.run_pacing_task"
INGEST = "reporting.tasks.ingest_events_task"
LIVE = "reporting.tasks.publish_live_task"
RECONCILE = "campaigns.tasks.reconcile_spend_task"
WINDOW = 10.0  # seconds counted with both beats, and again after one is killed


def sent_tasks(client: Redis) -> Counter[str]:
    """Messages waiting in the broker's default queue, per task."""
    queue = f"{settings.REDIS_KEY_PREFIX}celery"
    return Counter(json.loads(raw)["headers"]["task"] for raw in client.lrange(queue, 0, -1))


def sent_over(client: Redis, seconds: float) -> tuple[Counter[str], float]:
    before, started = sent_tasks(client), time.monotonic()
    time.sleep(seconds)
    return sent_tasks(client) - before, time.monotonic() - started


def test_two_beats_send_each_duty_once_per_period_and_one_alone_keeps_pacing(
    tmp_path: Path,
) -> None:
    with private_redis(tmp_path / "redis") as redis_server:
        env = project_env(
            REDIS_URL=redis_server.url,
            DATABASE_URL=f"sqlite:///{tmp_path / 'unused.sqlite3'}",  # beat reads no table
            PACING_EVERY_SECONDS="1",
            LIVE_EVERY_SECONDS="1",
            INGEST_EVERY_SECONDS="2",
            PACING_RECONCILE_EVERY_SECONDS="5",
        )
        beats = []
        for n in range(2):
            args = celery_beat_args(tmp_path / f"beat-{n}-schedule")
            beats.append(LoggedProcess(args, env=env, log=tmp_path / f"beat-{n}.log"))
        client = Redis.from_url(redis_server.url)
        try:
            for beat in beats:
                beat.wait_for_text("beat: Starting", timeout=120)
            time.sleep(3)  # both past their first ticks

            # when both run for ten seconds
            marks = [len(beat.text()) for beat in beats]
            both, took = sent_over(client, WINDOW)
            senders = [beat.text()[mark:].count("Sending due task run-pacing")
                       for beat, mark in zip(beats, marks, strict=True)]  # fmt: skip

            # then each duty went out once per period, not once per beat
            print(f"two beats, {took:.1f} s: {dict(both)}; pacing sent by each: {senders}")
            assert abs(both[PACING] - took) <= 1.5
            assert abs(both[LIVE] - took) <= 1.5
            assert abs(both[INGEST] - took / 2) <= 1.5
            assert both[RECONCILE] in (2, 3)
            assert sum(senders) == both[PACING]

            # when the beat that sent pacing is killed (the other's schedule had it too)
            sender = beats[0] if senders[0] >= senders[1] else beats[1]
            survivor = beats[1] if sender is beats[0] else beats[0]
            sender.proc.send_signal(signal.SIGKILL)
            sender.proc.wait(10)
            mark = len(survivor.text())
            alone, took = sent_over(client, WINDOW)

            # then the other sends pacing every period, as before
            print(f"one beat, {took:.1f} s: {dict(alone)}")
            assert abs(alone[PACING] - took) <= 1.5
            assert abs(alone[INGEST] - took / 2) <= 1.5
            assert survivor.text()[mark:].count("Sending due task run-pacing") == alone[PACING]
            assert survivor.alive()
        finally:
            client.close()
            for beat in beats:
                beat.stop()
