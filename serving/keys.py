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

    @property
    def ingest_lock(self) -> str:
        return f"{self.prefix}ingest:lock"
