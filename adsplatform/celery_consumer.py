"""The worker's broker consumer, made to survive a broker outage with tasks in flight.

When the broker connection drops, Celery 5.7 collects the connection (which detaches its
transport) and then closes it; closing the Redis channel tries to restore the messages still
unacknowledged (our tasks acknowledge late), and with the transport detached kombu raises
AttributeError instead of a connection error. Celery treats that as unrecoverable and the
worker exits: a Redis restart of a few seconds killed the worker whenever a task was running
(tests/faults/test_celery_redis_outage.py). The unacknowledged messages are safe in Redis's
unacked set either way (kombu redelivers them after the visibility timeout, and every task
is idempotent), so the right thing is to log the failed restore and reconnect.

The same detached channel bites once more after the reconnect: a task that was running during
the outage finishes, and its late acknowledgement goes to the old channel, whose connection is
gone; kombu raises AttributeError from inside the event loop and the worker exits (seen in CI
with 300 tasks in flight). That acknowledgement cannot reach Redis any more; the message stays
in the unacked set and is redelivered, so it is logged and dropped too.
"""

from collections.abc import Callable
from functools import wraps
from typing import Any

from celery.utils.log import get_logger
from celery.worker.consumer import Consumer

logger = get_logger(__name__)


def _tolerate_detached_channel(callback: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(callback)
    def acknowledge(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except AttributeError:
            logger.warning(
                "a task finished after the broker connection it came on was lost; its "
                "acknowledgement cannot be sent, so Redis redelivers it after the visibility "
                "timeout",
                exc_info=True,
            )
            return None

    return acknowledge


class OutageTolerantConsumer(Consumer):
    def call_soon_ack(self, p: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        # celery 5.7 has it; the type stubs predate it
        return super().call_soon_ack(  # type: ignore[misc]
            _tolerate_detached_channel(p), *args, **kwargs
        )

    def on_connection_error_after_connected(self, exc: Exception) -> None:
        try:
            super().on_connection_error_after_connected(exc)
        except AttributeError:
            logger.warning(
                "broker connection lost with tasks in flight; they stay unacknowledged in "
                "Redis and are redelivered after the visibility timeout; reconnecting",
                exc_info=True,
            )
            self.connection = None
