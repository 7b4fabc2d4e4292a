"""Redis Cluster for serving: the lean batch connection, routed by slot, and redis-py's client.

`redis+cluster://[user:password@]host:port[,host:port...]` (`rediss+cluster://` for TLS)
names a cluster by one or more of its nodes (docs/deploy.md). `ClusterWire` learns the slot
map (CLUSTER SLOTS) from them, splits each batch per master by the slot of each command's
key, writes the parts on one `serving.wire.Wire` per master at once and hands the replies
back in the batch's order, as a `Wire` does. A MOVED reply refreshes the map and sends the
command again to its new master; an ASK reply sends it once to the node named, after ASKING.
Scripts are loaded on every master (a `SCRIPT LOAD` in a batch goes to each of them).

Every key of one command (every KEYS of one script) must hash to one slot: `RedisKeys` on a
cluster tags them so. A single Redis never comes here: `open_wire` hands it the plain `Wire`.
"""

import asyncio
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

from serving.keys import is_cluster_url
from serving.wire import Command, Endpoint, Wire, WireError, connect

SLOTS = 16384
# Redirections followed for one command before its reply is left as the error.
MAX_REDIRECTS = 5
# Commands without a key, sent to every master (their first master's reply is the one kept).
EVERY_MASTER = frozenset({b"SCRIPT", "SCRIPT", b"PING", "PING"})


def cluster_nodes(url: str) -> tuple[list[tuple[str, int]], Endpoint]:
    """The seed nodes a cluster URL names, and the credentials (an `Endpoint` template)."""
    scheme, _, rest = url.partition("://")
    if not is_cluster_url(url):
        raise ValueError(f"not a Redis Cluster URL: {scheme}://")
    parts = urlsplit(f"redis://{rest}")
    netloc = parts.netloc.rpartition("@")[2]
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    userinfo = parts.netloc.rpartition("@")[0]
    user, _, password = userinfo.partition(":")
    nodes: list[tuple[str, int]] = []
    for node in filter(None, netloc.split(",")):
        host, _, port = node.rpartition(":") if ":" in node else (node, "", "6379")
        nodes.append((host or "127.0.0.1", int(port or 6379)))
    if parts.path.strip("/") not in ("", "0"):
        raise ValueError("a Redis Cluster has only database 0")
    template = Endpoint(
        username=unquote(user or query.get("username", "")),
        password=unquote(password or query.get("password", "")),
        tls=scheme.startswith("rediss"),
    )
    return nodes or [("127.0.0.1", 6379)], template


def redis_client(url: str, timeout: float) -> Redis:
    """redis-py's asyncio client for `url`: a `RedisCluster` for a cluster URL (it has the
    same commands and pipelines, routed by slot), else a plain `Redis`."""
    if not is_cluster_url(url):
        return Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    nodes, template = cluster_nodes(url)
    client = RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in nodes],
        username=template.username or None,
        password=template.password or None,
        ssl=template.tls,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
    )
    # Not a subclass, but what serving calls (get, mget_nonatomic, hgetall, pipelines, set,
    # aclose) it has.
    return cast(Redis, client)


async def mget(client: Redis, keys: list[str]) -> list[Any]:
    """MGET, split per slot on a cluster (its keys need not share one: snapshot parts)."""
    if isinstance(client, RedisCluster):
        return cast(list[Any], await client.mget_nonatomic(keys))
    return cast(list[Any], await client.mget(keys))


def command_key(command: Command) -> Any:
    """The key a command is routed by (a script's first KEYS), None for one without keys."""
    name = command[0]
    if name in EVERY_MASTER:
        return None
    if name in ("EVALSHA", "EVAL", b"EVALSHA", b"EVAL"):
        return command[3] if int(command[2]) > 0 else None
    return command[1] if len(command) > 1 else None


def _slot(key: Any) -> int:
    return key_slot(key if isinstance(key, bytes) else str(key).encode())


def _moved(reply: Any) -> tuple[int, str, int] | None:
    """(slot, host, port) of a MOVED or ASK error reply, else None."""
    if not isinstance(reply, hiredis.ReplyError):
        return None
    text = str(reply)
    if not text.startswith(("MOVED ", "ASK ")):
        return None
    _, slot, address = text.split(" ", 2)
    host, _, port = address.rpartition(":")
    return int(slot), host, int(port)


class ClusterWire:
    """A batch connection to a Redis Cluster: one `Wire` per master, the slot map, and the
    same interface as `Wire` for `serving.events.EventSink`."""

    def __init__(self, seeds: list[tuple[str, int]], template: Endpoint, timeout: float) -> None:
        self.seeds = seeds
        self.template = template
        self.timeout = timeout
        self.slots: list[tuple[str, int]] = []
        self.nodes: dict[tuple[str, int], Wire] = {}
        self.loaded: set[str] = set()  # SHAs loaded on every master (`EventSink`)
        self._closed = False
        # A master could not be reached: its slots may have a new master (a failover,
        # which sends no MOVED to whoever asks the dead one), so the next batch asks again.
        self._stale = False

    @property
    def closed(self) -> bool:
        """Closed, or a master's connection was lost (a failover): the sink reconnects,
        learning the map again."""
        return self._closed or self._stale or any(w.closed for w in self.nodes.values())

    @property
    def masters(self) -> list[tuple[str, int]]:
        return list(dict.fromkeys(self.slots))

    async def _node(self, address: tuple[str, int]) -> Wire:
        wire = self.nodes.get(address)
        if wire is None or wire.closed:
            host, port = address
            endpoint = Endpoint(host=host, port=port, username=self.template.username,
                                password=self.template.password, tls=self.template.tls)  # fmt: skip
            wire = self.nodes[address] = await connect(endpoint, self.timeout)
        return wire

    async def refresh(self) -> None:
        """Learn the slot map from a known node (the seeds, then the masters known)."""
        failures: list[str] = []
        for address in dict.fromkeys([*self.masters, *self.seeds]):
            try:
                wire = await self._node(address)
                (reply,) = await asyncio.wait_for(wire.send([("CLUSTER", "SLOTS")]), self.timeout)
            except (OSError, TimeoutError) as exc:
                self.nodes.pop(address, None)
                failures.append(f"{address[0]}:{address[1]}: {exc}")
                continue
            if isinstance(reply, hiredis.ReplyError):
                failures.append(f"{address[0]}:{address[1]}: {reply}")
                continue
            slots: list[tuple[str, int]] = [("", 0)] * SLOTS
            for start, end, master, *_replicas in reply:
                host = master[0].decode() if master[0] else address[0]
                for slot in range(int(start), int(end) + 1):
                    slots[slot] = (host, int(master[1]))
            if any(not host for host, _ in slots):
                failures.append(f"{address[0]}:{address[1]}: not every slot is served")
                continue
            self.slots = slots
            for stale in set(self.nodes) - set(slots):  # no longer a master
                self.nodes.pop(stale).close()
            return
        raise WireError(f"no Redis Cluster node gave its slot map: {'; '.join(failures)}")

    def send(self, commands: Sequence[Command]) -> "asyncio.Future[list[Any]]":
        """Write a batch, split per master; the future gets one reply per command, in order
        (an error reply, or the exception of a master that failed, in its place)."""
        return asyncio.ensure_future(self._send(commands))

    async def _send(self, commands: Sequence[Command]) -> list[Any]:
        if self._closed:
            raise WireError("Redis Cluster connection closed")
        if self._stale:
            await asyncio.wait_for(self.refresh(), self.timeout)
            self._stale = False
        replies: list[Any] = [None] * len(commands)
        # Per master, its commands in the batch's order (a script's load before its calls).
        groups: dict[tuple[str, int], list[int]] = {}
        masters = self.masters
        for i, command in enumerate(commands):
            key = command_key(command)
            if key is None:
                for address in masters:
                    groups.setdefault(address, []).append(i)
            else:
                groups.setdefault(self.slots[_slot(key)], []).append(i)
        answered: set[int] = set()
        redirects: list[tuple[int, tuple[int, str, int]]] = []

        async def on(address: tuple[str, int], indexes: list[int]) -> None:
            try:
                wire = await self._node(address)
                got = await wire.send([commands[i] for i in indexes])
            except (OSError, TimeoutError) as exc:
                self._stale = True
                got = [exc] * len(indexes)
            for i, reply in zip(indexes, got, strict=True):
                if i in answered:  # a keyless command's other masters
                    if isinstance(reply, hiredis.ReplyError) and not isinstance(
                        replies[i], hiredis.ReplyError
                    ):
                        replies[i] = reply  # a master that refused it: say so
                    continue
                answered.add(i)
                replies[i] = reply
                moved = _moved(reply)
                if moved is not None:
                    redirects.append((i, moved))

        await asyncio.gather(*(on(address, indexes) for address, indexes in groups.items()))
        for _ in range(MAX_REDIRECTS):
            if not redirects:
                break
            pending, redirects = redirects, []
            if any(str(replies[i]).startswith("MOVED") for i, _ in pending):
                await self.refresh()
            await asyncio.gather(*(self._redirect(commands[i], i, to, replies, redirects)
                                   for i, to in pending))  # fmt: skip
        return replies

    async def _redirect(
        self,
        command: Command,
        index: int,
        to: tuple[int, str, int],
        replies: list[Any],
        redirects: list[tuple[int, tuple[int, str, int]]],
    ) -> None:
        ask = str(replies[index]).startswith("ASK")
        try:
            if ask:
                wire = await self._node((to[1], to[2]))
                reply = (await wire.send([("ASKING",), command]))[1]
            else:
                wire = await self._node(self.slots[to[0]])
                (reply,) = await wire.send([command])
        except (OSError, TimeoutError) as exc:
            self._stale = True
            reply = exc
        replies[index] = reply
        moved = _moved(reply)
        if moved is not None:
            redirects.append((index, moved))

    def oldest_wait(self, now: float) -> float:
        return max((wire.oldest_wait(now) for wire in self.nodes.values()), default=0.0)

    def abort_if_stalled(self, now: float, timeout: float) -> bool:
        return any([wire.abort_if_stalled(now, timeout) for wire in list(self.nodes.values())])

    def close(self) -> None:
        self._closed = True
        for wire in self.nodes.values():
            wire.close()
        self.nodes.clear()


async def connect_cluster(url: str, timeout: float = 5.0) -> ClusterWire:
    """A cluster connection that knows the slot map (connections to masters open on use)."""
    seeds, template = cluster_nodes(url)
    wire = ClusterWire(seeds, template, timeout)
    await asyncio.wait_for(wire.refresh(), timeout)
    return wire


async def open_wire(url: str, timeout: float) -> Wire | ClusterWire:
    """The batch connection for a Redis URL: a `ClusterWire` for a cluster, else a `Wire`."""
    if is_cluster_url(url):
        return await connect_cluster(url, timeout)
    return await connect(Endpoint.from_url(url), timeout)
