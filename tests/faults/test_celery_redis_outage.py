"""Issue 12 item 6: a Redis outage of 15 s must not kill the Celery worker or beat.

A real worker and beat (subprocesses) run against a private redis-server, which the test stops
for 15 s and starts again (with AOF and without, so the broker's queues survive or not); the
worker must still be alive afterwards and run a task sent after the restart, and beat must
still be sending its schedule. Before the broker settings in adsplatform/settings/tasks.py
("Celery") the worker died with kombu's "Unrecoverable error" during the reconnect.
"""

import time
import uuid
from pathlib import Path

import pytest
from celery import Celery
from django.conf import settings

from tests.faults.services import (
    LoggedProcess,
    celery_beat_args,
    celery_worker_args,
    private_redis,
    project_env,
)

OUTAGE_SECONDS = 15
# After Redis is back, a task sent then must run within this long: the worker retries the
# connection at growing intervals (2 s, 4 s, 6 s, ... capped at 30 s), which after 15 s of
# outage puts the reconnect within about 6 s, plus what is left of the backlog; the margin
# is for a CI machine busy with other work.
RECOVERY_SECONDS = 40


def _send_probe(broker_url: str, backlog: int = 0) -> str:
    """Send celery's built-in accumulate task (no database) and return its id, after
    `backlog` others (so that the worker has tasks in flight, unacknowledged)."""
    sender = Celery(broker=broker_url)
    sender.conf.broker_transport_options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    with sender.producer_or_acquire() as producer:
        for _ in range(backlog):
            sender.send_task("celery.accumulate", args=[0], producer=producer)
    task_id = str(uuid.uuid4())
    sender.send_task("celery.accumulate", args=[1], task_id=task_id)
    sender.close()
    return task_id


@pytest.mark.parametrize("appendonly", [True, False], ids=["aof", "no-aof"])
def test_worker_and_beat_ride_out_a_redis_outage(tmp_path: Path, appendonly: bool) -> None:
    with private_redis(tmp_path / "redis", appendonly=appendonly) as redis_server:
        env = project_env(
            REDIS_URL=redis_server.url,
            # No task here needs a table; the beat's do, and fail without one: that is fine.
            DATABASE_URL=f"sqlite:///{tmp_path / 'unused.sqlite3'}",
            INGEST_EVERY_SECONDS="1",
        )
        worker = LoggedProcess(celery_worker_args(), env=env, log=tmp_path / "worker.log")
        beat = LoggedProcess(celery_beat_args(tmp_path / "beat-schedule"), env=env,
                             log=tmp_path / "beat.log")  # fmt: skip
        try:
            worker.wait_for_text("ready.", timeout=120)
            probe = _send_probe(redis_server.url)
            worker.wait_for_text(f"celery.accumulate[{probe}] succeeded", timeout=60)

            # when: Redis goes away for 15 s while tasks are in flight, and comes back
            _send_probe(redis_server.url, backlog=300)
            worker.wait_for_text("celery.accumulate[", timeout=30, start=len(worker.text()))
            redis_server.stop()
            time.sleep(OUTAGE_SECONDS)
            worker_mark, beat_mark = len(worker.text()), len(beat.text())
            redis_server.start()
            back = time.monotonic()

            # then: both are alive, the worker runs a new task, beat sends its schedule
            probe = _send_probe(redis_server.url)
            worker.wait_for_text(
                f"celery.accumulate[{probe}] succeeded", timeout=RECOVERY_SECONDS,
                start=worker_mark,
            )  # fmt: skip
            recovered = time.monotonic() - back
            beat.wait_for_text("Sending due task ingest-events", timeout=30, start=beat_mark)
            worker.wait_for_text("ingest_events_task[", timeout=30, start=worker_mark)
            assert worker.alive()
            assert beat.alive()
            assert "Unrecoverable error" not in worker.text()
            print(f"worker ran a task {recovered:.1f} s after Redis came back")
        finally:
            beat.stop()
            worker.stop()
