"""Fixtures of the serving tests: real HTTP buyers on 127.0.0.1 (`buyer_server`), and the
Redis Cluster some of them also run on."""

from collections.abc import Callable, Iterator

import pytest

from tests.redis_cluster import redis_cluster
from tests.serving.buyer_server import Behaviour, LoopbackBuyer

__all__ = ["redis_cluster"]


@pytest.fixture
def start_buyer() -> Iterator[Callable[..., LoopbackBuyer]]:
    started: list[LoopbackBuyer] = []

    def start(behaviour: Behaviour | None = None) -> LoopbackBuyer:
        server = LoopbackBuyer(behaviour)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def buyer(start_buyer: Callable[..., LoopbackBuyer]) -> LoopbackBuyer:
    return start_buyer()
