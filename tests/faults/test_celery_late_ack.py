"""A task that finishes after its broker connection was lost must not kill the worker.

CI saw the worker of tests/faults/test_celery_redis_outage.py exit after Redis came back: a
task received before the outage finished, its late acknowledgement went to the old channel
(transport detached, pools released), and kombu raised AttributeError ('NoneType' object has
no attribute 'hostname') from inside the event loop. That race is rare in the outage test, so
this one builds the same state on purpose with a real kombu channel on a private Redis.
"""

import logging
from pathlib import Path

import pytest
from kombu import Connection, Exchange, Message, Queue

from adsplatform.celery_consumer import _tolerate_detached_channel
from tests.faults.services import PrivateRedis, private_redis


def _received_then_cut_off(redis_server: PrivateRedis) -> tuple[Connection, Message]:
    """A message consumed (unacknowledged) on a connection that Redis then dropped and the
    consumer collected, as Celery does on a connection error."""
    connection = Connection(redis_server.url)
    queue = Queue("late-ack", Exchange("late-ack"), "late-ack")
    with connection.Producer() as producer:
        producer.publish({"n": 1}, exchange=queue.exchange, routing_key="late-ack",
                         declare=[queue])  # fmt: skip
    received: list[Message] = []
    channel = connection.channel()
    consumer = connection.Consumer(queue, channel=channel, accept=["json"])
    consumer.register_callback(lambda body, message: received.append(message))
    consumer.consume()
    connection.drain_events(timeout=5)
    redis_server.stop()
    connection.collect()
    channel._disconnect_pools()  # type: ignore[attr-defined]  # what closing the channel ends with
    redis_server.start()
    return connection, received[0]


def test_kombu_still_raises_attribute_error_on_a_late_ack(tmp_path: Path) -> None:
    """If this starts failing, kombu fixed it and the workaround can go."""
    with private_redis(tmp_path / "redis") as redis_server:
        connection, message = _received_then_cut_off(redis_server)
        with pytest.raises(AttributeError):
            message.ack_log_error(logging.getLogger(__name__), connection.connection_errors)


def test_the_workers_acknowledgement_logs_it_and_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with private_redis(tmp_path / "redis") as redis_server:
        connection, message = _received_then_cut_off(redis_server)
        acknowledge = _tolerate_detached_channel(message.ack_log_error)
        with caplog.at_level(logging.WARNING):
            assert acknowledge(logging.getLogger(__name__), connection.connection_errors) is None
        assert "acknowledgement cannot be sent" in caplog.text
        # the message is still in Redis's unacked set, so it is redelivered, not lost
        assert redis_server.client().hlen("unacked") == 1
