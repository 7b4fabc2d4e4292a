import asyncio
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from django.conf import settings
from django.db import OperationalError, connections
from django_redis import get_redis_connection
from redis import Redis

from adsplatform.celery import app as celery_app

# Debian's chromium (a test tool's own browser download fails on these machines).
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Test traffic is scripted (python-httpx and urllib user agents, loopback addresses, a click
# a millisecond after its impression): invalid traffic by design. Filtering is off for the
# suite, its subprocesses included, and on in the tests of it (tests/serving/test_ivt*.py).
os.environ.setdefault("IVT_ENABLED", "false")


def _delete_prefixed(client: Redis, prefix: str) -> None:
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture(scope="session", autouse=True)
def _test_key_prefix() -> Iterator[None]:
    # Tests delete what they write; refuse to run on a production key prefix.
    prefix = settings.REDIS_KEY_PREFIX
    if not prefix.startswith("test"):
        pytest.exit("run the tests with bin/test (it sets REDIS_KEY_PREFIX=test...:)", returncode=2)
    _delete_prefixed(get_redis_connection("default"), prefix)
    yield


@pytest.fixture(autouse=True)
def redis_client() -> Iterator[Redis]:
    """The project's Redis, emptied of this project's keys after each test."""
    client: Redis = get_redis_connection("default")
    yield client
    _delete_prefixed(client, settings.REDIS_KEY_PREFIX)


@pytest.fixture(autouse=True)
def _test_settings(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGES = {
        **settings.STORAGES,
        "telemetry": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "telemetry")},
        },
    }
    # Tests do not run collectstatic: serve static files unhashed from an empty root.
    settings.STATIC_ROOT = tmp_path / "static"
    settings.STATIC_ROOT.mkdir()
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    # Test buyers are real HTTP servers on loopback, which production refuses (SSRF).
    settings.SERVING_FETCH_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]
    settings.IVT_RULES = {**settings.IVT_RULES, "enabled": False}
    # Password hashing is deliberately slow; tests log in often.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@task_postrun.connect
def _close_worker_db_connections(**kwargs: Any) -> None:
    # Worker-thread connections would keep the test database open past its teardown.
    connections.close_all()


@pytest.fixture
def celery_worker(transactional_db: None) -> Iterator[None]:
    """A real Celery worker (in a thread) consuming the real Redis broker."""
    celery_app.control.purge()
    with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        yield


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    """A headless Debian Chromium driven by Playwright (a module skips itself without it)."""
    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls
    # are still plain synchronous ones.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield chromium
        chromium.close()


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll until predicate() is truthy; fail the test with a clear message otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except OperationalError as exc:
            # SQLite's in-memory test database refuses a read while a worker thread writes.
            if "locked" not in str(exc):
                raise
            value = None
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {predicate}")


def run(coro: Any) -> Any:
    return asyncio.run(coro)
