"""What the snapshot build adds for the learning loop (docs/learning.md, "Serving").

Per line item: its pCTR ceiling under the live model (CPC), its target CPA and smoothed
conversion rate (CPM line items of target-CPA campaigns), and for a line item set to
"optimise" its creatives' shares under Thompson sampling. The delivery figures come from
the rollups (`CreativeHourly`, attributed `Conversion`s) of the last `LEARNING_STATS_DAYS`,
read in two aggregate queries per build, and only when something needs them.

Thompson sampling, computed here rather than per request: with every creative's posterior
`Beta(a + clicks, b + impressions - clicks)` fixed for a snapshot's life, drawing one
sample per creative and showing the highest is the same as drawing the creative with the
probability that its sample is the highest. Those probabilities are estimated once per
build (`LEARNING_TS_DRAWS` joint draws, seeded by the line item and its figures, so the
same figures give the same shares and no needless snapshot change), mixed with a uniform
`LEARNING_EXPLORATION` share, and published as the line item's creative weights in
millionths. Serving draws by weight as for any line item, and the logged propensity, a
weight over the sum of the eligible ones, is exactly the probability it drew with.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

import msgspec
import numpy as np
from django.conf import settings
from django.db.models import Count, Sum

from campaigns.models import BidType, Campaign, CreativeRotation, GoalType, LineItem
from reporting.conversions.models import Attribution, Conversion
from reporting.models import CreativeHourly
from serving.pctr import CtrModel
from serving.snapshot import LineItemSnap


@dataclass
class DeliveryStats:
    """Impressions and clicks per (line item, creative); conversions per line item."""

    creatives: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)
    clicks: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    conversions: dict[int, int] = field(default_factory=dict)

    @property
    def conversion_rate(self) -> float:
        """Conversions per click over every line item: the prior of the smoothed rates."""
        return (sum(self.conversions.values()) + 0.5) / (sum(self.clicks.values()) + 1)


def delivery_stats(now: datetime) -> DeliveryStats:
    since = now - timedelta(days=settings.LEARNING_STATS_DAYS)
    stats = DeliveryStats()
    rows = (
        CreativeHourly.objects.filter(hour__gte=since)
        .order_by()
        .values_list("line_item_id", "creative_id")
        .annotate(imps=Sum("impressions"), clks=Sum("clicks"))
    )
    for li, cr, imps, clicks in rows:
        stats.creatives[(li, cr)] = (int(imps or 0), int(clicks or 0))
        stats.clicks[li] += int(clicks or 0)
    stats.conversions = dict(
        Conversion.objects.filter(converted_at__gte=since, line_item_id__gt=0)
        .exclude(attribution=Attribution.NONE)
        .order_by()
        .values("line_item_id")
        .annotate(n=Count("id"))
        .values_list("line_item_id", "n")
    )
    return stats


def smoothed_cvr(stats: DeliveryStats, line_item: int, prior: float) -> float:
    """(conversions + k x prior) / (clicks + k), k = LEARNING_PRIOR_CLICKS."""
    k = settings.LEARNING_PRIOR_CLICKS
    conversions = stats.conversions.get(line_item, 0)
    return (conversions + k * prior) / (stats.clicks.get(line_item, 0) + k)


SHARE_UNITS = 1_000_000  # the optimiser's weights: millionths


def thompson_probabilities(
    counts: list[tuple[int, int]], prior: tuple[float, float], draws: int, seed: list[int]
) -> list[float]:
    """P(creative i's posterior sample is the highest), from (impressions, clicks) each."""
    imps = np.array([i for i, _ in counts], dtype=float)
    clicks = np.minimum(np.array([c for _, c in counts], dtype=float), imps)
    rng = np.random.default_rng(seed)
    samples = rng.beta(prior[0] + clicks, prior[1] + imps - clicks, size=(draws, len(counts)))
    wins = np.bincount(samples.argmax(axis=1), minlength=len(counts))
    return [float(w) / draws for w in wins]


def optimised_weights(
    line_item: int, creatives: list[int], slots: list[str], stats: "DeliveryStats"
) -> list[int]:
    """The creatives' shares in millionths, Thompson sampling within each slot's group
    (banner size or format: the creatives that compete for the same slot)."""
    k = settings.LEARNING_PRIOR_IMPRESSIONS
    exploration = settings.LEARNING_EXPLORATION
    counts = [stats.creatives.get((line_item, cr), (0, 0)) for cr in creatives]
    # The prior: the line item's CTR over its creatives, itself smoothed toward the default.
    imps, clicks = sum(i for i, _ in counts), sum(c for _, c in counts)
    mean = (clicks + k * settings.SERVING_DEFAULT_CTR) / (imps + k)
    prior = (mean * k, (1 - mean) * k)
    weights = [0] * len(creatives)
    for group in dict.fromkeys(slots):
        members = [n for n, s in enumerate(slots) if s == group]
        if len(members) == 1:
            weights[members[0]] = SHARE_UNITS
            continue
        seed = [line_item, *(x for n in members for x in counts[n])]
        probabilities = thompson_probabilities(
            [counts[n] for n in members], prior, settings.LEARNING_TS_DRAWS, seed
        )
        for n, p in zip(members, probabilities, strict=True):
            share = exploration / len(members) + (1 - exploration) * p
            weights[n] = max(1, round(share * SHARE_UNITS))
    return weights


def with_learning(
    snap: LineItemSnap,
    li: LineItem,
    campaign: Campaign,
    rate: Decimal,
    model: CtrModel | None,
    stats: "LazyStats",
    slots: list[str],
) -> LineItemSnap:
    """The line item's snapshot with what the live model and the rollups say about it;
    `slots` are its creatives' slots (banner size or format), parallel to its creatives."""
    changes: dict[str, object] = {}
    if li.creative_rotation == CreativeRotation.OPTIMISE:
        changes["creative_rotation"] = CreativeRotation.OPTIMISE.value
        if len(snap.creative_ids) > 1:
            changes["creative_weights"] = optimised_weights(
                li.pk, snap.creative_ids, slots, stats.get()
            )
    if model is not None and li.bid_type == BidType.CPC:
        prior = model.prior_ctr(li.pk) or settings.SERVING_DEFAULT_CTR
        ceiling = min(1.0, prior * settings.LEARNING_PCTR_CEILING_RATIO)
        changes["ctr_ceiling"] = round(ceiling, 6)
    if (
        model is not None
        and li.bid_type == BidType.CPM
        and campaign.goal_type == GoalType.TARGET_CPA
        and campaign.goal_target is not None
    ):
        changes["target_cpa"] = (campaign.goal_target * rate).quantize(Decimal("0.0001"))
        figures = stats.get()
        changes["pcvr"] = round(smoothed_cvr(figures, li.pk, figures.conversion_rate), 6)
    return msgspec.structs.replace(snap, **changes) if changes else snap


class LazyStats:
    """The delivery figures, read on first use: a build that needs none reads none."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self._stats: DeliveryStats | None = None

    def get(self) -> DeliveryStats:
        if self._stats is None:
            self._stats = delivery_stats(self.now)
        return self._stats
