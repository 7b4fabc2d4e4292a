"""What one serving process knows on its own about a buyer: a token bucket for its QPS cap
and a circuit breaker on its consecutive failures. Used alone when there is no shared Redis
(`BuyerPool` without a fleet), and beside the fleet-wide state otherwise
(`serving.limits.fleet`): a process's own breaker still opens after its own run of
failures, before the fleet's error rate has caught up."""

from dataclasses import dataclass

from serving.metrics import BREAKER_CLOSED, BREAKER_HALF_OPEN, BREAKER_OPEN


@dataclass(slots=True)
class CircuitBreaker:
    """Closed → open after N consecutive failures → half-open (one probe) after a cooldown."""

    failures_to_open: int
    cooldown: float
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False

    @property
    def is_closed(self) -> bool:
        return self.opened_at is None

    def allows(self, now: float) -> bool:
        """Whether a call may go out now; does not claim the half-open probe."""
        if self.opened_at is None:
            return True
        return not self.probing and now - self.opened_at >= self.cooldown

    def start(self) -> None:
        """A call is going out: in the half-open state it is the one probe."""
        if self.opened_at is not None:
            self.probing = True

    def release(self) -> None:
        """A call was abandoned without a verdict (the whole request was cancelled)."""
        self.probing = False

    def state(self, now: float) -> int:
        """Closed, open (cooling down) or half-open (its cooldown over: the next call probes)."""
        if self.opened_at is None:
            return BREAKER_CLOSED
        if self.probing or now - self.opened_at >= self.cooldown:
            return BREAKER_HALF_OPEN
        return BREAKER_OPEN

    def record(self, failed: bool, now: float) -> None:
        if not failed:
            self.failures, self.opened_at, self.probing = 0, None, False
            return
        self.failures += 1
        if self.probing or self.failures >= self.failures_to_open:
            self.opened_at, self.probing = now, False


@dataclass(slots=True)
class TokenBucket:
    """At most `rate` calls per second, with a burst of one second's worth."""

    rate: int
    tokens: float
    updated: float

    def take(self, now: float) -> bool:
        self.tokens = min(float(self.rate), self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True
