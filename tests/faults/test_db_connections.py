"""Issue 12 item 8: API and dashboard requests hold a bounded number of Postgres connections.

A real granian (two workers) serves the API from the test database under a bounded run of
50 requests per second; pg_stat_activity for that database must stay within the pool's
bound (workers x DB_POOL_MAX_SIZE) during the run and after it. With CONN_MAX_AGE = 60 each
request's thread kept its own connection open for a minute (20 after 20 requests).
"""

import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from campaigns.models import ApiToken
from tests.faults.services import (
    free_port,
    product_granian,
    project_env,
    shared_database_url,
    wait_listening,
)

pytestmark = pytest.mark.django_db(transaction=True)
WORKERS = 2
POOL_MAX = 4
RATE = 50  # requests per second, across all threads
SECONDS = 8
THREADS = 20  # concurrent clients, each paced to RATE / THREADS


def _connections_to_this_database() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        return int(cursor.fetchone()[0])


def _postgres_sockets_per_process(root_pid: int) -> dict[int, int]:
    root = psutil.Process(root_pid)
    out = {}
    for proc in [root, *root.children(recursive=True)]:
        sockets = proc.net_connections("tcp")
        out[proc.pid] = sum(1 for c in sockets if c.raddr and c.raddr.port == 5432)
    return out


def test_connections_stay_bounded_at_50_requests_per_second(tmp_path: Path) -> None:
    database_url = shared_database_url()
    if database_url is None:
        pytest.skip("counts Postgres connections: run on Postgres (CI does)")
    user = get_user_model().objects.create_user("api", password="pw-123456789", is_staff=True)
    _, key = ApiToken.issue(user, "load")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = project_env(
        DATABASE_URL=database_url, DB_POOL_MAX_SIZE=str(POOL_MAX), API_RATE_LIMIT="100000/min",
        LOG_LEVEL="WARNING",
    )  # fmt: skip
    server = product_granian(port, env=env, log=tmp_path / "granian.log", workers=WORKERS)
    statuses: list[int] = []
    samples: list[int] = []
    try:
        wait_listening(base, server)

        def load(n_threads: int, until: float) -> None:
            with httpx.Client(base_url=base, timeout=10) as client:
                while time.monotonic() < until:
                    began = time.monotonic()
                    r = client.get("/api/v1/campaigns/", headers={"Authorization": f"Bearer {key}"})
                    statuses.append(r.status_code)
                    time.sleep(max(0.0, n_threads / RATE - (time.monotonic() - began)))

        until = time.monotonic() + SECONDS
        threads = [threading.Thread(target=load, args=(THREADS, until)) for _ in range(THREADS)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            samples.append(_connections_to_this_database())
            time.sleep(0.25)
        after = _connections_to_this_database()
        per_process = _postgres_sockets_per_process(server.proc.pid)
    finally:
        server.stop()

    print(
        f"{len(statuses)} requests in {SECONDS} s (offered {RATE}/s), statuses "
        f"{sorted(set(statuses))}; connections to the database during the run: max "
        f"{max(samples)}, after it {after} (the test's own included); the server's per "
        f"process: {per_process}"
    )
    assert set(statuses) == {200}
    # Every client was answered at least once: THREADS concurrent clients against a pool
    # of WORKERS x POOL_MAX. How many more depends on the machine's load (no timed assert).
    assert len(statuses) >= THREADS
    # The server's own sockets to Postgres: at most the pool of each worker, whatever the
    # number of requests (pg_stat_activity also counts this test's connections).
    assert all(n <= POOL_MAX for n in per_process.values())
    assert sum(per_process.values()) <= WORKERS * POOL_MAX
    assert max(samples) <= WORKERS * POOL_MAX + 2
