"""The worker's broker consumer, made to survive a broker outage with tasks in flight.

When the broker connection drops, Celery 5.7 collects the connection (which detaches its
transport) and then closes it; closing the Redis channel tries to restore the messages still
unacknowledged (our tasks acknowledge late), and with the transport detached kombu raises
AttributeError instead of a connection error. Celery treats that as unrecoverable and the
worker exits: a Redis restart of a few seconds killed the worker whenever a task was running
(tests/faults/test_celery_redis_outage.py). The unacknowledged messages are safe in Redis's
unacked set either way (kombu redelivers them after the visibility timeout, and every task
is idempotent), so the right thing is to log the failed restore and reconnect.
"""

from celery.utils.log import get_logger
from celery.worker.consumer import Consumer

logger = get_logger(__name__)


class OutageTolerantConsumer(Consumer):
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
