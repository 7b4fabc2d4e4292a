"""The launcher's process supervision: a crashed child is restarted, not the end of the run.

One process dying (the web server, the Celery worker, beat, the embedded Redis) used to make
`bin/run` stop everything else. Now each child is restarted after a back-off that doubles
with every crash in a row (1 s, 2 s, 4 s ... at most 30 s) and resets once the child has
stayed up for a minute; Ctrl-C (or SIGTERM) still stops them all. Production uses systemd or
supervisord instead (deploy/, docs/deploy.md), with the same policy.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 30.0
# A child that ran this long before it died is restarted after the first back-off again.
STABLE_AFTER_SECONDS = 60.0


def signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Stop a process and its group (SIGTERM), killing it if it lingers."""
    signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        signal_group(proc, signal.SIGKILL)
        proc.wait()


@dataclass
class Child:
    """One supervised process: how to start it and its restart bookkeeping."""

    name: str
    start: Callable[[], subprocess.Popen[bytes]]
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    crashes_in_a_row: int = 0
    restart_at: float | None = None
    restarts: int = field(default=0)

    def launch(self, now: float) -> None:
        self.proc = self.start()
        self.started_at = now
        self.restart_at = None

    def backoff(self) -> float:
        return min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2 ** (self.crashes_in_a_row - 1))


class Supervisor:
    """Start children, restart each that exits with back-off, stop them all on exit."""

    def __init__(self, log: Callable[[str], None] | None = None) -> None:
        self.children: list[Child] = []
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))

    def add(self, name: str, start: Callable[[], subprocess.Popen[bytes]]) -> Child:
        child = Child(name, start)
        child.launch(time.monotonic())
        self.children.append(child)
        return child

    def adopt(
        self, name: str, proc: subprocess.Popen[bytes], start: Callable[[], subprocess.Popen[bytes]]
    ) -> Child:
        """Supervise a process started already (the embedded Redis), restarted by `start`."""
        child = Child(name, start, proc=proc, started_at=time.monotonic())
        self.children.append(child)
        return child

    def check(self, now: float) -> None:
        """One round: notice exits, schedule and perform restarts."""
        for child in self.children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self.log(f"restarting {child.name}")
                    child.restarts += 1
                    try:
                        child.launch(now)
                    except (OSError, SystemExit) as failed:
                        self._schedule_restart(child, now, f"could not start: {failed}")
                continue
            code = child.proc.poll() if child.proc is not None else -1
            if code is None:
                continue
            if now - child.started_at >= STABLE_AFTER_SECONDS:
                child.crashes_in_a_row = 0
            self._schedule_restart(child, now, f"exited with {_describe(code)}")

    def _schedule_restart(self, child: Child, now: float, why: str) -> None:
        child.crashes_in_a_row += 1
        delay = child.backoff()
        child.restart_at = now + delay
        self.log(
            f"{child.name} {why}; restarting in {delay:.0f} s "
            f"(crash {child.crashes_in_a_row} in a row)"
        )

    def run_forever(self, interval: float = 0.5) -> None:
        while True:
            self.check(time.monotonic())
            time.sleep(interval)

    def stop_all(self, timeout: float = 15.0) -> None:
        """Stop every child: the web server, the worker and beat together (SIGTERM, one
        shared `timeout`, then SIGKILL for any that lingers), then the embedded Redis they
        were writing to. One at a time, a slow warm shutdown of each (a worker finishing
        its task) added up to a minute before Ctrl-C returned on a loaded machine."""
        live = [c.proc for c in self.children if c.proc is not None and c.proc.poll() is None]
        infrastructure = [c.proc for c in self.children if c.name == "redis" and c.proc]
        first = [p for p in live if p not in infrastructure]
        for proc in first:
            signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in first:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                signal_group(proc, signal.SIGKILL)
                proc.wait()
        for proc in infrastructure:
            if proc.poll() is None:
                stop_process(proc, timeout)


def _describe(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
    return f"status {code}"
