"""What happened with each buyer in a round: the outcome reasons counted per buyer, and the
round's valid bids and outcomes as the auction and `?explain=1` see them."""

from dataclasses import dataclass, field
from typing import Any

from serving.buyers.bids import TIMEOUT, ExternalBid, LostBid

# Outcome reasons, as counted per buyer (Redis fields "{buyer_id}:{reason}").
REQUEST = "request"
BID = "bid"
# Not called:
CONSENT = "consent"
COPPA = "coppa"
NO_TIME = "no_time"
NO_FX_RATE = "no_fx_rate"  # the buyer's currency cannot be converted
CIRCUIT_OPEN = "circuit_open"
QPS_CAP = "qps_cap"
BUILD_ERROR = "build_error"  # our side failed to write the request
# The answer as a whole:
ERROR = "error"
NO_BID = "no_bid"
INVALID_JSON = "invalid_json"
TOO_LARGE = "too_large"
# Notices:
NOTICE_DROPPED = "notice_dropped"
NOTICE_ERROR = "notice_error"
MARKUP_ERROR = "markup_error"  # fetching a nurl-only bid's markup failed
REFUSED_ADDRESS = "refused_address"  # a URL at an address we may not fetch (serving.netguard)

_FAILURES = frozenset({TIMEOUT, ERROR, INVALID_JSON})


def is_failure(reason: str) -> bool:
    """What opens the circuit: the buyer is down or broken, not merely unwilling."""
    return reason in _FAILURES or reason.startswith("http_5")


@dataclass(slots=True)
class BuyerOutcome:
    """What happened with one buyer in one round, for `?explain=1`."""

    buyer_id: int
    buyer_name: str
    outcome: str  # "bid", or the reason it was skipped or its answer dropped
    called: bool = False
    latency_ms: float | None = None  # set when an HTTP answer arrived
    status: int | None = None
    nbr: int | None = None  # the buyer's own no-bid reason, when it gave one
    detail: str = ""
    bids: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # per-bid drop reasons

    def as_dict(self) -> dict[str, Any]:
        return {
            "buyer": self.buyer_id,
            "name": self.buyer_name,
            "outcome": self.outcome,
            "called": self.called,
            "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 2),
            "status": self.status,
            "nbr": self.nbr,
            "detail": self.detail,
            "bids": self.bids,
            "dropped": dict(self.dropped),
        }


@dataclass(slots=True)
class BuyerRound:
    """The valid bids of one round and what every buyer did."""

    bids: list[ExternalBid] = field(default_factory=list)
    outcomes: list[BuyerOutcome] = field(default_factory=list)
    # Priced bids dropped before the auction, with their loss reasons (already notified).
    lost: list[LostBid] = field(default_factory=list)

    def bids_for(self, imp_id: str) -> list[ExternalBid]:
        """The valid bids on one imp, highest price first."""
        return sorted((b for b in self.bids if b.imp_id == imp_id), key=lambda b: -b.price)

    def outcome(self, buyer_id: int) -> BuyerOutcome | None:
        return next((o for o in self.outcomes if o.buyer_id == buyer_id), None)

    def explain(self) -> list[dict[str, Any]]:
        return [o.as_dict() for o in self.outcomes]
