"""The Redis Cluster fixture, and serving's keys, slots and batch connection on it."""

from tests.redis_cluster import LocalCluster


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
