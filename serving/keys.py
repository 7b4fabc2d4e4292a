"""Names of the Redis keys shared by serving, the snapshot publisher and reporting."""

from dataclasses import dataclass
from datetime import UTC, datetime


def day_of(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y%m%d")


@dataclass(frozen=True, slots=True)
class RedisKeys:
    prefix: str

    @property
    def snapshot_version(self) -> str:
        return f"{self.prefix}snapshot:version"

    @property
    def snapshot_seq(self) -> str:
        return f"{self.prefix}snapshot:seq"

    def snapshot_data(self, version: int) -> str:
        return f"{self.prefix}snapshot:data:{version}"

    @property
    def snapshot_pending(self) -> str:
        return f"{self.prefix}snapshot:pending"

    @property
    def events(self) -> str:
        return f"{self.prefix}events"

    def seen(self, kind: str, decision_id: str) -> str:
        return f"{self.prefix}seen:{kind}:{decision_id}"

    def spend(self, day: str, campaign_id: int) -> str:
        """Today's spend of a campaign in billionths of its currency (CPM micros per impression)."""
        return f"{self.prefix}spend:{day}:{campaign_id}"

    def exhausted(self, day: str) -> str:
        return f"{self.prefix}exhausted:{day}"

    def frequency(self, user: str) -> str:
        """A hash of impression counters for one pseudonymous user id: field
        `{line_item}:{period}:{bucket}` (period minute/hour/day/lifetime)."""
        return f"{self.prefix}fc:{user}"

    def buyer_stats(self, day: str) -> str:
        """A hash of per-buyer outcome counters for one UTC day: field `{buyer}:{reason}`."""
        return f"{self.prefix}buyerstats:{day}"

    @property
    def pacing_rates(self) -> str:
        """A hash: line item id → pass-through probability (0..1) written by the pacing
        controller; a missing field means 1.0."""
        return f"{self.prefix}pacing:rates"

    @property
    def ingest_lock(self) -> str:
        return f"{self.prefix}ingest:lock"
