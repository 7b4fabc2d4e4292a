"""What the Prometheus endpoint and the readiness check read: Redis and the database."""

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from campaigns.snapshot import redis_client, redis_keys
from reporting.backlog import oldest_unrolled_ms
from reporting.ingest import GROUP
from reporting.metrics.budgets import BudgetFigures, collect_budgets
from serving.keys import day_of

# Celery tasks whose last run tells whether beat is alive and pacing on schedule.
PACING_TASK = "campaigns.tasks.run_pacing_task"
INGEST_TASK = "reporting.tasks.ingest_events_task"


@dataclass
class TaskFigures:
    runs: int = 0
    failures: int = 0
    seconds: float = 0.0
    last_end: float = 0.0


@dataclass
class Figures:
    serving: dict[str, dict[str, Any]] = field(default_factory=dict)  # process -> figures
    buyers: dict[tuple[str, str], float] = field(default_factory=dict)  # (buyer, outcome)
    backlog: dict[str, float] = field(default_factory=dict)
    tasks: dict[str, TaskFigures] = field(default_factory=dict)
    snapshot_version: int = 0
    now: float = 0.0
    # Epoch ms of the oldest event not rolled up (None: none).
    ingest_oldest_ms: int | None = None
    budgets: BudgetFigures = field(default_factory=BudgetFigures)


def _text(value: Any) -> str:
    """A Redis reply as text (the client may or may not decode its replies)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _number(value: Any) -> float:
    try:
        return float(_text(value))
    except (TypeError, ValueError):
        return 0.0


def collect(*, budgets: bool = False) -> Figures:
    """Every live serving process's figures, today's buyer counters (UTC day), the stream
    backlog gauge, the oldest event not rolled up and the Celery task figures: a handful of
    Redis reads; with `budgets`, the live campaigns' budget figures too (`budgets`)."""
    client, keys = redis_client(), redis_keys()
    figures = Figures(now=time.time())
    names = sorted(client.scan_iter(match=keys.serving_metrics_pattern(), count=500))
    prefix = keys.serving_metrics("")
    for name, raw in zip(names, client.mget(names) if names else [], strict=True):
        if raw is None:  # expired between the scan and the read
            continue
        process = _text(name).removeprefix(prefix)
        figures.serving[process] = json.loads(raw)
    day = day_of(figures.now)
    for raw_field, value in client.hgetall(keys.buyer_stats(day)).items():
        text = _text(raw_field)
        buyer, _, outcome = text.partition(":")
        figures.buyers[buyer, outcome] = _number(value)
    figures.backlog = {_text(k): _number(v) for k, v in client.hgetall(keys.stream_backlog).items()}
    for raw_field, value in client.hgetall(keys.task_metrics).items():
        text = _text(raw_field)
        task, _, what = text.rpartition("|")
        entry = figures.tasks.setdefault(task, TaskFigures())
        if what == "runs":
            entry.runs = int(_number(value))
        elif what == "failures":
            entry.failures = int(_number(value))
        elif what == "seconds":
            entry.seconds = _number(value)
        elif what == "last_end":
            entry.last_end = _number(value)
    figures.snapshot_version = int(_number(client.get(keys.snapshot_version)))
    figures.ingest_oldest_ms = oldest_unrolled_ms(client, keys.events, GROUP)
    if budgets:
        figures.budgets = collect_budgets(datetime.fromtimestamp(figures.now, UTC))
    return figures
