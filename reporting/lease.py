"""A short Redis lock renewed by its holder while it works (the ingest lock).

A long fixed timeout outlives a holder that was killed (kill -9, OOM, a lost host) and
freezes whatever waits on the lock for that long. A lease of a few seconds, renewed by a
thread of the holder every third of its length, expires seconds after its holder dies. The
renewal checks the holder's token, so a holder that stalled past its lease (a long GC, a
frozen VM) learns that it lost it and stops before writing anything more.
"""

import contextlib
import logging
import os
import socket
import threading
import uuid

from redis import Redis
from redis.exceptions import LockError, RedisError
from redis.lock import Lock

log = logging.getLogger(__name__)


class LeaseLost(LockError):
    """The lease expired or was taken over: the holder must stop writing (a LockError, so
    tasks that retry on Redis errors retry)."""


class Lease:
    """A token-checked lock of `seconds`, renewed in the background until released."""

    def __init__(self, client: Redis, name: str, seconds: float) -> None:
        self.name = name
        self.seconds = seconds
        # Not thread-local: the renewing thread must see the token the holder acquired with.
        self._lock: Lock = client.lock(
            name, timeout=seconds, blocking_timeout=0, thread_local=False
        )
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self, wait: float = 0) -> bool:
        """Take the lease (waiting up to `wait` seconds); False when another holder has it."""
        # Who holds it, for an operator looking at the key: host, process, then randomness.
        token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"
        if not self._lock.acquire(blocking=wait > 0, blocking_timeout=wait or None, token=token):
            return False
        self._thread = threading.Thread(target=self._renew, name=f"lease {self.name}", daemon=True)
        self._thread.start()
        return True

    def _renew(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                self._lock.reacquire()
            except (LockError, RedisError) as exc:
                # Unreachable Redis counts as lost: nobody can tell whether it expired there.
                log.warning("lease %s lost: %s", self.name, exc)
                self._lost.set()
                return

    def check(self) -> None:
        """Raise LeaseLost unless the lease is still ours; renews it for a full term."""
        if self._lost.is_set():
            raise LeaseLost(self.name)
        try:
            self._lock.reacquire()
        except (LockError, RedisError) as exc:
            self._lost.set()
            raise LeaseLost(self.name) from exc

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def release(self) -> None:
        """Stop renewing and give the lease back (if it is still ours)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        # Expired, taken over, or Redis is gone: then nothing of ours is left to release.
        with contextlib.suppress(LockError, RedisError):
            self._lock.release()
