"""The Redis Cluster fixture, and serving's keys, slots and batch connection on it."""

import asyncio
from collections.abc import Iterator
from typing import Any

import hiredis
import pytest

from serving.cluster import cluster_nodes, connect_cluster
from serving.events import Event, EventSink
from serving.keys import RedisKeys
from serving.wire import Lua
from tests.redis_cluster import LocalCluster

BUMP = Lua("return redis.call('INCR', KEYS[1])")


def test_the_fixture_is_a_cluster_of_three_masters_with_a_replica_each(
    redis_cluster: LocalCluster,
) -> None:
    # given the session's cluster
    client = redis_cluster.client()
    # then every slot is served, by three masters, each with its replica
    assert redis_cluster.ready()
    assert len(client.get_primaries()) == 3
    assert len(client.get_replicas()) == 3
    assert 6379 not in redis_cluster.ports
    client.close()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def cluster(redis_cluster: LocalCluster) -> Iterator[LocalCluster]:
    """The session's cluster, emptied after the test."""
    yield redis_cluster
    redis_cluster.flush()


def test_cluster_urls_name_seed_nodes_and_credentials() -> None:
    nodes, template = cluster_nodes("rediss+cluster://app:pw%2F1@10.0.0.1:7000,10.0.0.2:7001")
    assert nodes == [("10.0.0.1", 7000), ("10.0.0.2", 7001)]
    assert (template.username, template.password, template.tls) == ("app", "pw/1", True)
    assert cluster_nodes("redis+cluster://h")[0] == [("h", 6379)]
    with pytest.raises(ValueError, match="database 0"):
        cluster_nodes("redis+cluster://h:7000/3")


def test_a_batch_across_masters_gets_its_replies_in_order(cluster: LocalCluster) -> None:
    # given keys on every master (one per hash tag, tags picked to span the three)
    tags = [f"t{n}" for n in range(12)]

    async def go() -> list[Any]:
        wire = await connect_cluster(cluster.url)
        assert len(wire.masters) == 3
        batch: list[tuple[Any, ...]] = []
        for tag in tags:
            batch += [("INCRBY", f"k:{{{tag}}}", 3), ("HSET", f"h:{{{tag}}}", "a", tag)]
        batch += [("HGETALL", f"h:{{{tags[0]}}}"), ("LPUSH", f"k:{{{tags[1]}}}", "x")]
        batch += [("SCRIPT", "LOAD", BUMP.body), ("EVALSHA", BUMP.sha, 1, f"k:{{{tags[2]}}}")]
        batch += [("MGET", f"a:{{{tags[3]}}}", f"b:{{{tags[4]}}}")]  # CROSSSLOT (or same slot)
        replies = await wire.send(batch)
        wire.close()
        return replies

    # when one batch writes them all
    replies = run(go())
    # then each command got its own reply, in order, errors in their place
    assert replies[: 2 * len(tags)] == [3, 1] * len(tags)
    assert replies[24] == [b"a", b"t0"]
    assert isinstance(replies[25], hiredis.ReplyError) and "WRONGTYPE" in str(replies[25])
    assert replies[26] == BUMP.sha.encode()
    assert replies[27] == 4
    assert isinstance(replies[28], hiredis.ReplyError) and "CROSSSLOT" in str(replies[28])
    assert {cluster.client().keyslot(f"{{{t}}}") for t in tags} and len(
        {_master_of(cluster, f"{{{t}}}") for t in tags}
    ) == 3


def _master_of(cluster: LocalCluster, key: str) -> int:
    client = cluster.client()
    node = client.get_node_from_key(key)
    client.close()
    return int(node.port)


def _node_ids(cluster: LocalCluster) -> dict[int, bytes]:
    ids: dict[int, bytes] = {}
    for port in cluster.ports:
        ids[port] = cluster.node(port).execute_command("CLUSTER", "MYID")
    return ids


def test_moved_and_ask_are_followed(cluster: LocalCluster) -> None:
    # given a connection that learned the slot map, and a key's slot then migrating
    key = "moving:{m}"
    slot = cluster.client().keyslot(key)
    source = _master_of(cluster, key)
    masters = {_master_of(cluster, f"{{t{n}}}") for n in range(12)}
    target = next(p for p in sorted(masters) if p != source)
    ids = _node_ids(cluster)

    async def go() -> tuple[Any, Any, Any]:
        wire = await connect_cluster(cluster.url)
        cluster.node(target).execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source])
        cluster.node(source).execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target])
        # when a command for a key the source no longer holds goes out: ASK, to the target
        (asked,) = await wire.send([("SET", key, "v1")])
        pipe = cluster.node(target).pipeline(transaction=False)  # one connection
        on_target = pipe.execute_command("ASKING").get(key).execute()[1]
        # and when the slot has moved for good, the stale map gets MOVED and follows it
        cluster.node(target).execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[target])
        cluster.node(source).execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[target])
        (moved,) = await wire.send([("GET", key)])
        learned = wire.slots[slot]
        wire.close()
        return asked, on_target, (moved, learned)

    try:
        asked, on_target, (moved, learned) = run(go())
    finally:  # the slot goes back to its first master (empty it first)
        cluster.node(target).delete(key)
        for port in masters:
            cluster.node(port).execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[source])
    # then both commands reached the slot's new master
    assert asked == b"OK"
    assert on_target == b"v1"
    assert moved == b"v1"
    assert learned == ("127.0.0.1", target)


def test_the_event_sink_records_on_a_cluster(cluster: LocalCluster) -> None:
    # given serving's keys and sink on the cluster, four partitions
    keys = RedisKeys.for_url("test:", cluster.url, 4)
    streams = keys.event_streams(4)

    async def go() -> tuple[Any, Any]:
        sink = EventSink(cluster.url, keys.events, streams)
        for n in range(20):
            sink.emit([Event(t="req", ts=n, pl=1, d=f"{n:022d}-0")])
            sink.call("HINCRBY", keys.frequency(f"user{n}"), "1:day:0", 1)
        bumped = [await sink.run_script(BUMP, (f"test:c:{{p{n}}}",), ()) for n in range(4)]
        freq = await sink.fetch("HGETALL", keys.frequency("user3"))
        await sink.close()
        return bumped, freq

    # when it writes events, counters and scripts across the partitions' slots
    bumped, freq = run(go())
    # then they are all in the cluster
    client = cluster.client()
    assert sum(client.xlen(s) for s in streams) == 20
    assert len({client.keyslot(s) for s in streams}) == 4
    assert bumped == [1, 1, 1, 1]
    assert freq == [b"1:day:0", b"1"]
    client.close()
