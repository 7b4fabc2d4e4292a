"""Names of the Redis keys shared by serving, the snapshot publisher and reporting.

On a single Redis (`cluster` false) the names are those every release has used: an upgrade
keeps a running deployment's counters. On a Redis Cluster (`cluster` true, the
`redis+cluster://` URL scheme, docs/deploy.md) every key a Lua script touches with others
carries one hash tag, so that each call stays in one slot: `{p<n>}` for the stream partition
a campaign's tracking lands in (`partition`: the campaign id modulo the partitions), which
its spend counters, exhausted set, decisions' de-duplication marks and behavioural counters
share; `{b<id>}` per buyer for the fleet limits (the same names in both modes).
"""

import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo


def day_of(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y%m%d")


@lru_cache(maxsize=4096)
def _local_day(zone: str, minute: int) -> str:
    return datetime.fromtimestamp(minute * 60, ZoneInfo(zone)).strftime("%Y%m%d")


def local_day(epoch: float, zone: str) -> str:
    """The date in a time zone (a campaign's day: its advertiser's), cached per minute."""
    return _local_day(zone, int(epoch // 60))


def request_partition(decision_id: str, partitions: int) -> int:
    """The stream partition of a request's events, of `partitions` (at least 2): by the
    request's id, the 22 characters a decision id starts with (`serving.ids`), so that a
    request's slots share one."""
    return zlib.crc32(decision_id[:22].encode()) % partitions


def is_cluster_url(url: str) -> bool:
    """Whether a Redis URL names a Redis Cluster (`redis+cluster://`, `rediss+cluster://`)."""
    return url.split("://", 1)[0].endswith("+cluster")


@dataclass(frozen=True, slots=True)
class RedisKeys:
    prefix: str
    # A Redis Cluster: hash-tagged names (above). `partitions` is the event stream's
    # (EVENT_STREAM_PARTITIONS); on a cluster it also decides the slot of a campaign's
    # counters, so it is fixed once a cluster deployment runs (docs/deploy.md).
    cluster: bool = False
    partitions: int = 1

    def __post_init__(self) -> None:
        if self.cluster and ("{" in self.prefix or "}" in self.prefix):
            raise ValueError("on a Redis Cluster the key prefix may not hold { or }")

    @classmethod
    def for_url(cls, prefix: str, url: str, partitions: int = 1) -> "RedisKeys":
        return cls(prefix, cluster=is_cluster_url(url), partitions=max(1, partitions))

    def partition(self, campaign_id: int, decision_id: str) -> int:
        """The stream partition of a decision's tracking events (impressions, clicks, player
        events): by its request (`request_partition`, as `EventSink.stream_for`); on a
        cluster by its campaign, whose counters the same Lua call charges (a house
        decision's: by its request)."""
        if self.partitions < 2:
            return 0
        if self.cluster and campaign_id:
            return campaign_id % self.partitions
        return request_partition(decision_id, self.partitions)

    def _tag(self, campaign_id: int, decision_id: str = "") -> str:
        """`{p<n>}:` on a cluster (n: `partition`), "" on a single Redis."""
        if not self.cluster:
            return ""
        return f"{{p{self.partition(campaign_id, decision_id)}}}:"

    def tracking_stream(self, campaign_id: int, decision_id: str) -> str:
        """The stream partition a decision's tracking events are appended to."""
        return self.event_stream(self.partition(campaign_id, decision_id))

    @property
    def snapshot_version(self) -> str:
        """The current version; on a cluster in one slot with the manifests (`{s}`), which
        the publish script sets with it."""
        if self.cluster:
            return f"{self.prefix}snapshot:{{s}}:version"
        return f"{self.prefix}snapshot:version"

    @property
    def snapshot_seq(self) -> str:
        return f"{self.prefix}snapshot:seq"

    def snapshot_manifest(self, version: int) -> str:
        """A version's `serving.snapshot.Manifest`: the hashes of the parts it is made of."""
        if self.cluster:
            return f"{self.prefix}snapshot:{{s}}:manifest:{version}"
        return f"{self.prefix}snapshot:manifest:{version}"

    def snapshot_part(self, digest: str) -> str:
        """One content-addressed part of a snapshot, shared by every version holding it."""
        return f"{self.prefix}snapshot:part:{digest}"

    @property
    def snapshot_pending(self) -> str:
        return f"{self.prefix}snapshot:pending"

    @property
    def events(self) -> str:
        """The event stream's first partition (the only one unless EVENT_STREAM_PARTITIONS
        says more)."""
        return self.event_stream(0)

    def event_stream(self, partition: int) -> str:
        """One partition of the event stream: `events` for the first (as with one partition),
        `events:{n}` for the others; on a cluster `events:{p<n>}` (tagged: its slot)."""
        if self.cluster:
            return f"{self.prefix}events:{{p{partition}}}"
        return f"{self.prefix}events:{partition}" if partition else f"{self.prefix}events"

    def event_streams(self, partitions: int) -> tuple[str, ...]:
        return tuple(self.event_stream(n) for n in range(max(1, partitions)))

    @property
    def event_partitions(self) -> str:
        """The most partitions the event stream was ever configured with (what readers read)."""
        return f"{self.prefix}eventpartitions"

    def seen(self, kind: str, decision_id: str, campaign_id: int = 0) -> str:
        """A decision's mark that an event of `kind` was recorded (de-duplication); on a
        cluster in its campaign's slot (`partition`)."""
        if self.cluster:
            return f"{self.prefix}seen:{self._tag(campaign_id, decision_id)}{kind}:{decision_id}"
        return f"{self.prefix}seen:{kind}:{decision_id}"

    def spend(self, day: str, campaign_id: int) -> str:
        """A campaign's day (in its time zone) as a hash (`serving.spend`): spend `s` in
        billionths of its currency (CPM micros per impression), impressions won `i`, clicks
        `k`, the same per line item (`s:{li}`...), wins not yet rendered (`p:{li}:{minute}`),
        the day's caps the pacing controller sets (`cap`, `icap`, `kcap`) and when it first
        saw the campaign out of budget (`x`, epoch seconds)."""
        if self.cluster:
            return f"{self.prefix}spend:{self._tag(campaign_id)}{day}:{campaign_id}"
        return f"{self.prefix}spend:{day}:{campaign_id}"

    def lifetime_spend(self, campaign_id: int) -> str:
        """A campaign's lifetime counters: the same fields as its day, without pending wins."""
        if self.cluster:
            return f"{self.prefix}spend:life:{self._tag(campaign_id)}{campaign_id}"
        return f"{self.prefix}spend:life:{campaign_id}"

    def exhausted(self, day: str, campaign_id: int = 0) -> str:
        """Campaigns (`{id}`) and line items (`li:{id}`) out of budget on a local day; on a
        cluster one set per partition (the campaign's): readers read `exhausted_sets`."""
        if self.cluster:
            return f"{self.prefix}exhausted:{self._tag(campaign_id)}{day}"
        return f"{self.prefix}exhausted:{day}"

    def exhausted_sets(self, day: str) -> tuple[str, ...]:
        """Every set `exhausted` names for a day: one on a single Redis, one per partition
        on a cluster."""
        if not self.cluster:
            return (self.exhausted(day),)
        return tuple(f"{self.prefix}exhausted:{{p{n}}}:{day}" for n in range(self.partitions))

    def sync(self, user: str) -> str:
        """A hash of the buyers' user ids for one pseudonymous id: field `{buyer_id}`, value
        the uid that buyer gave in its sync redirect (`serving.sync`)."""
        return f"{self.prefix}sync:{user}"

    def sync_state(self, nonce: str) -> str:
        """A sync in flight: the pseudonym and buyer behind one redirect's random nonce."""
        return f"{self.prefix}syncstate:{nonce}"

    def frequency(self, user: str) -> str:
        """A hash of impression counters for one pseudonymous user id: field
        `{line_item}:{period}:{bucket}` (period minute/hour/day/lifetime)."""
        return f"{self.prefix}fc:{user}"

    def buyer_stats(self, day: str) -> str:
        """A hash of per-buyer outcome counters for one UTC day: field `{buyer}:{reason}`."""
        return f"{self.prefix}buyerstats:{day}"

    # A buyer's fleet-wide limits (`serving.limits.fleet`), hash-tagged by buyer so that each
    # script touches one Redis Cluster slot.
    def buyer_qps(self, buyer_id: int, second: int) -> str:
        """The buyer's QPS tokens granted to serving processes for one epoch second."""
        return f"{self.prefix}buyerqps:{{b{buyer_id}}}:{second}"

    def buyer_breaker(self, buyer_id: int) -> str:
        """The fleet's calls and failures to the buyer, per second over the breaker's window."""
        return f"{self.prefix}buyerbreaker:{{b{buyer_id}}}"

    def buyer_breaker_open(self, buyer_id: int) -> str:
        """Set (with a TTL: the cooldown) while the fleet's circuit for the buyer is open."""
        return f"{self.prefix}buyerbreaker:{{b{buyer_id}}}:open"

    @property
    def pacing_rates(self) -> str:
        """A hash: line item id → pass-through probability (0..1) written by the pacing
        controller; a missing field means 1.0."""
        return f"{self.prefix}pacing:rates"

    @property
    def bid_multipliers(self) -> str:
        """A hash: line item id → multiplier (0..1] on the bid of a dynamic-down line item,
        written by the pacing controller; a missing field means 1 (the booked bid)."""
        return f"{self.prefix}pacing:bids"

    @property
    def pacing_state(self) -> str:
        """A hash: `c{id}` / `l{id}` → the controller's JSON state of a campaign or line item."""
        return f"{self.prefix}pacing:state"

    def lifetime_base(self, campaign_id: int, day: str) -> str:
        """A campaign's rollups of the settled hours before its local `day` (those ending two
        hours before its midnight), per line item (JSON), summed once a day for the
        reconciliation's lifetime figures."""
        return f"{self.prefix}pacing:lifebase:{day}:{campaign_id}"

    @property
    def pacing_lock(self) -> str:
        """The controller tick's lease (`reporting.lease`): one tick at a time, whichever
        beat scheduler and worker sent it."""
        return f"{self.prefix}pacing:lock"

    @property
    def reconcile_lock(self) -> str:
        """The spend reconciliation's lease: two at once would both raise a counter by the
        same shortfall and count it twice."""
        return f"{self.prefix}pacing:reconcile:lock"

    def traffic_shape(self, zone: str, day: str) -> str:
        """The learned share of a day's requests per local hour (a JSON list), cached."""
        return f"{self.prefix}pacing:shape:{zone}:{day}"

    @property
    def ingest_lock(self) -> str:
        return f"{self.prefix}ingest:lock"

    def serving_metrics(self, process: str) -> str:
        """One serving process's metrics (JSON, expiring; `serving.metrics`)."""
        return f"{self.prefix}metrics:serving:{process}"

    def serving_metrics_pattern(self) -> str:
        return f"{self.prefix}metrics:serving:*"

    @property
    def task_metrics(self) -> str:
        """A hash: per Celery task name, runs, failures, runtime sum and the last run's end
        (`reporting.metrics.signals`)."""
        return f"{self.prefix}metrics:tasks"

    @property
    def reconcile_metrics(self) -> str:
        """A hash: per campaign `d:{id}`, today's spend in Redis less the rollups' at the last
        reconciliation (nanos, before its repair); per currency `r:{code}`, the spend it has
        repaired (nanos, summed); `at`, its last run (`campaigns.pacing.services`)."""
        return f"{self.prefix}metrics:reconcile"

    @property
    def stream_backlog(self) -> str:
        """A hash: the event stream's length, pending and lag as last measured, the limit,
        whether it is over it and how often it crossed it (`reporting.backlog`)."""
        return f"{self.prefix}ingest:backlog"

    def ivt_count(
        self,
        subject: str,
        name: str,
        kind: str,
        window: int,
        bucket: int,
        campaign_id: int = 0,
        decision_id: str = "",
    ) -> str:
        """Events of one pseudonymous id (`subject` "u") or truncated address ("n") in one
        window (`serving.ivt.judge`); expires with it. Never a raw id or full address. On a
        cluster counted per partition (the slot the decision's event is recorded in)."""
        tag = self._tag(campaign_id, decision_id) if self.cluster else ""
        return f"{self.prefix}ivt:{tag}{subject}:{name}:{kind}:{window}:{bucket}"

    def ivt_hold(self, user: str, campaign_id: int = 0, decision_id: str = "") -> str:
        """A pseudonymous id held invalid after passing a limit (its reason; expiring); on a
        cluster per partition, as its counters."""
        if self.cluster:
            return f"{self.prefix}ivt:hold:{self._tag(campaign_id, decision_id)}{user}"
        return f"{self.prefix}ivt:hold:{user}"

    @property
    def ivt_held(self) -> str:
        """A sorted set: pseudonymous ids newly held (score: when, epoch ms) whose billed
        events before it are to be refunded (`reporting.ivt.refunds.refund_held`); on a
        cluster the first partition's (`ivt_held_in`)."""
        return self.ivt_held_in(0)

    def ivt_held_in(self, campaign_id: int, decision_id: str = "") -> str:
        """The held set a decision's billable events add to: `ivt_held`, one per partition
        on a cluster (readers read `ivt_held_sets`)."""
        if self.cluster:
            return f"{self.prefix}ivt:held:{{p{self.partition(campaign_id, decision_id)}}}"
        return f"{self.prefix}ivt:held"

    def ivt_held_sets(self) -> tuple[str, ...]:
        if not self.cluster:
            return (self.ivt_held,)
        return tuple(f"{self.prefix}ivt:held:{{p{n}}}" for n in range(self.partitions))

    @property
    def ivt_rules(self) -> str:
        """The invalid-traffic thresholds ad ops saved in admin (JSON), for serving."""
        return f"{self.prefix}ivt:rules"

    @property
    def ivt_datacenter(self) -> str:
        """A hash: the last good data-center list the refresh job published (`text`, one
        prefix a line) and its `version` (a digest of the text)."""
        return f"{self.prefix}ivt:datacenter"
