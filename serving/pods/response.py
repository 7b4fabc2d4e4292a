"""Our BidResponse bids for ad pods: each ad carries its duration (`dur`, which an exchange
needs to assemble a dynamic pod) and, for a structured pod, the slot it was chosen for
(`slotinpod` of its imp)."""

import dataclasses
from collections.abc import Sequence

from serving.openrtb.response import ResponseBid
from serving.render import Served


def ad_duration(s: Served) -> int | None:
    """Seconds of a rendered video or audio ad: our creative's, or the buyer's `dur`."""
    d = s.decision
    if d.creative is not None:
        return d.creative.duration or None
    return getattr(d.external, "dur", None)


def pod_bids(served: Sequence[Served], bids: Sequence[ResponseBid]) -> list[ResponseBid]:
    out = []
    for s, bid in zip(served, bids, strict=True):
        spec = s.decision.imp.video
        if spec is None or not s.decision.imp.is_pod:
            out.append(bid)
            continue
        slot = spec.slotinpod if spec.poddur is None else None
        out.append(dataclasses.replace(bid, dur=bid.dur or ad_duration(s), slotinpod=slot))
    return out
