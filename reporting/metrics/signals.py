"""Each Celery task's runs, failures, runtime and last end, in one Redis hash.

Recorded by the worker that ran it (task_prerun and task_postrun; a task that raised ends in
state FAILURE), so the Prometheus endpoint of any web process can tell how long ago pacing
last ran (and so whether beat is alive) and what the tasks cost. One pipeline per task run;
a failed write is logged and dropped (operational figures, not money).
"""

import logging
import time
from typing import Any

from celery.signals import task_postrun, task_prerun

log = logging.getLogger(__name__)

_started: dict[str, float] = {}


@task_prerun.connect
def _task_started(task_id: str | None = None, **_: Any) -> None:
    if task_id:
        _started[task_id] = time.monotonic()


@task_postrun.connect
def _task_finished(
    task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any
) -> None:
    began = _started.pop(task_id, None) if task_id else None
    name = getattr(task, "name", None)
    if not name or began is None:
        return
    record(name, time.monotonic() - began, failed=state not in (None, "SUCCESS"))


def record(name: str, seconds: float, *, failed: bool) -> None:
    from campaigns.snapshot import redis_client, redis_keys

    try:
        pipe = redis_client().pipeline(transaction=False)
        key = redis_keys().task_metrics
        pipe.hincrby(key, f"{name}|runs", 1)
        if failed:
            pipe.hincrby(key, f"{name}|failures", 1)
        pipe.hincrbyfloat(key, f"{name}|seconds", seconds)
        pipe.hset(key, f"{name}|last_end", f"{time.time():.3f}")
        pipe.execute()
    except Exception as exc:  # Redis down: Celery's own reconnect logic reports it
        log.debug("task metrics not recorded: %s", exc)
