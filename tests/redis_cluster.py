"""A real Redis Cluster on private loopback ports, for the tests that run on one.

Six `redis-server --cluster-enabled yes` nodes in a temporary directory, joined by
`redis-cli --cluster create --cluster-replicas 1` (three masters, a replica each), started
once per test session and killed after it. Never the shared Redis: its own ports, chosen
free together with their cluster bus ports (port + 10000).
"""

import contextlib
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from redis.cluster import ClusterNode, RedisCluster

from tests.faults.services import redis_binary

NODES = 6


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_ports(count: int) -> list[int]:
    """`count` ports under 55536 that are free, with their bus ports (port + 10000)."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.randint(21000, 29000)
        if port not in ports and _free(port) and _free(port + 10000):
            ports.append(port)
    return ports


def cluster_supported() -> bool:
    """The machine's redis-server is 3.0 or later (cluster mode; 7 for CLUSTER SHARDS)."""
    out = subprocess.run([redis_binary(), "--version"], capture_output=True, text=True).stdout
    version = out.split("v=", 1)[1].split()[0] if "v=" in out else "0"
    return int(version.split(".")[0]) >= 3 and shutil.which("redis-cli") is not None


@dataclass
class LocalCluster:
    ports: list[int]
    directory: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The serving URL: `redis+cluster://` naming every node (docs/deploy.md)."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)

    def client(self) -> RedisCluster:
        return RedisCluster(
            startup_nodes=[ClusterNode("127.0.0.1", p) for p in self.ports], socket_timeout=2
        )

    def start(self, timeout: float = 60.0) -> None:
        for port in self.ports:
            data = self.directory / str(port)
            data.mkdir(parents=True)
            args = [
                redis_binary(), "--bind", "127.0.0.1", "--port", str(port),
                "--cluster-enabled", "yes", "--cluster-config-file", str(data / "nodes.conf"),
                "--cluster-node-timeout", "2000", "--save", "", "--appendonly", "no",
                "--dir", str(data), "--logfile", str(data / "redis.log"),
            ]  # fmt: skip
            self.procs.append(subprocess.Popen(args, start_new_session=True))
        deadline = time.monotonic() + timeout
        for port in self.ports:
            while not self._pings(port):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cluster node {port} did not start: {self.directory}")
                time.sleep(0.05)
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
             "--cluster-replicas", "1", "--cluster-yes"],
            check=True, capture_output=True, timeout=timeout,
        )  # fmt: skip
        while not self.ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster did not reach cluster_state:ok: {self.directory}")
            time.sleep(0.1)

    def _pings(self, port: int) -> bool:
        with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
            return bool(self.node(port).ping())
        return False

    def ready(self) -> bool:
        """Every node says cluster_state:ok and knows three masters serving all slots, each
        with its replica."""
        for port in self.ports:
            try:
                info = self.node(port).execute_command("CLUSTER", "INFO")
            except (redis.ConnectionError, redis.TimeoutError):
                return False
            text = info.decode() if isinstance(info, bytes) else str(info)
            if "cluster_state:ok" not in text or "cluster_slots_ok:16384" not in text:
                return False
            # and every master's replica has joined (a failover needs it)
            ranges = self.node(port).execute_command("CLUSTER", "SLOTS")
            if len({tuple(r[2][:2]) for r in ranges}) != NODES // 2:
                return False
            if any(len(r) < 4 for r in ranges):
                return False
        return True

    def kill(self, port: int) -> None:
        """Kill one node as a crash would (SIGKILL)."""
        proc = self.procs[self.ports.index(port)]
        proc.kill()
        proc.wait(timeout=10)

    def master_of(self, key: str, among: list[int] | None = None) -> int:
        """The port of the master a live node says serves `key`'s slot."""
        client = redis.Redis(host="127.0.0.1", port=(among or self.ports)[0], socket_timeout=2)
        slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
        for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
            if int(start) <= slot <= int(end):
                return int(master[1])
        raise LookupError(slot)

    def flush(self) -> None:
        """Empty every master (replicas follow)."""
        for port in self.ports:
            with contextlib.suppress(redis.ResponseError):  # a replica refuses writes
                self.node(port).flushall()

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        self.procs.clear()


@contextlib.contextmanager
def local_cluster() -> Iterator[LocalCluster]:
    with tempfile.TemporaryDirectory(prefix="redis-cluster-") as directory:
        cluster = LocalCluster(free_cluster_ports(NODES), Path(directory))
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalCluster]:
    """A six-node Redis Cluster for the session (skipped where redis-server cannot)."""
    if not cluster_supported():
        pytest.skip("this redis-server has no cluster mode")
    with local_cluster() as cluster:
        yield cluster
