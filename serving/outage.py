"""One log line when serving loses Redis and one when it is back, not one per request.

Several parts of a serving process talk to Redis (the event sink, the snapshot reads, the
buyer counters); each reports its failures and successes here under its own name. The
outage starts with the first part that fails and ends when every failed part has succeeded
again; what failed meanwhile is counted and said at the end.
"""

import logging
import time

log = logging.getLogger("serving.outage")


class Outage:
    def __init__(self) -> None:
        self.since: float | None = None  # monotonic start of the current outage
        self._failing: set[str] = set()
        self.failures = 0  # in the current outage

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, part: str, exc: BaseException) -> None:
        self.failures += 1
        if part in self._failing:
            return
        self._failing.add(part)
        if self.since is None:
            self.since = time.monotonic()
            log.error(
                "Redis unavailable to serving (%s: %s): paid demand paused, tracking answers "
                "503 until it is back",
                part,
                exc or type(exc).__name__,
            )

    def ok(self, part: str) -> None:
        """Called on every success: costs one set lookup when nothing is failing."""
        if part not in self._failing:
            return
        self._failing.discard(part)
        if not self._failing and self.since is not None:
            log.warning(
                "Redis back for serving after %.1f s (%d failures meanwhile)",
                time.monotonic() - self.since,
                self.failures,
            )
            self.since, self.failures = None, 0
