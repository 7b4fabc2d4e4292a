"""Scoring candidates with the live pCTR model, in process (docs/learning.md, "Serving").

A `ModelScorer` is made once per published model (the snapshot header carries it) and keeps
every term that does not depend on the request, filled lazily and kept for the model's life:
per line item (its weight and cold-start term), per creative (its weight, its format's and
size's, its cold-start term) and per placement and creative (the cross feature). A
`RequestScores` is made once per request: the bias plus the context's weights (placement,
country, device type, OS, channel, region, categories, keywords: every hash of the request
is computed here, once), and the hour of week per advertiser zone. A candidate's pCTR is
then a few dictionary look-ups and one `exp` per creative.

eCPM:
- CPC: `bid x pCTR x 1000`, the pCTR being the expectation over the creatives it may show
  (their rotation weights, or the optimiser's shares), capped at the line item's
  `ctr_ceiling` so that the index can keep sorting by an upper bound (`serving.index`);
- a CPM line item of a target-CPA campaign: `min(bid, target CPA x pCTR x pCVR x 1000)`,
  pCVR the live pCVR model's conversions per click (a second `ModelScorer`, the same
  features; over several creatives, their conversions over their clicks), else the line
  item's smoothed conversions per click from the snapshot;
- everything else: its bid, as before.
Without consent to personalise, the personal feature (region) takes the value it has in
every non-consented training row (empty): only contextual features then count, in either
model.
"""

import zlib
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from serving.context import AdContext
from serving.pctr import CtrModel, Scorer, sigmoid
from serving.snapshot import CreativeSnap, LineItemSnap
from serving.telemetry import hour_of_week

if TYPE_CHECKING:  # serving.index imports this module
    from serving.index import Candidate, Index

MAX_KEYWORDS = 20  # as many as the telemetry files keep (serving.telemetry)
# Candidates' static terms kept per placement before that table starts again.
TERMS_CACHE_SIZE = 50_000
CONTEXT_CACHE_SIZE = 50_000  # contexts, and categories and keywords, kept per model


class ModelScorer(Scorer):
    """A published model made ready to score (`serving.pctr.Scorer`: its weights in a dict,
    the features' slots), with every term that does not depend on the request cached."""

    def __init__(self, model: CtrModel) -> None:
        super().__init__(model)
        # ctx-v1 models were trained without the region feature.
        self.uses_region = model.feature_set != "ctx-v1"
        self._line_items: dict[int, float] = {}
        self._creatives: dict[int, tuple[str, str, float]] = {}
        self._cross: dict[int, dict[int, float]] = {}  # placement -> creative -> weight
        self._how: dict[int, float] = {}
        # placement -> (line item, slot) -> (its creatives, their static terms)
        self._terms: dict[int, dict[Any, Any]] = {}
        # (placement, country, device type, OS, channel, region) -> bias + their weights
        self.contexts: dict[tuple[Any, ...], float] = {}
        self._values: dict[tuple[str, str], float] = {}  # a category's or keyword's weight

    def terms_of(self, name: str, values: tuple[str, ...]) -> float:
        """The summed weights of a request's categories or keywords (a keyword is hashed as
        the telemetry files hold it: its CRC-32)."""
        cache = self._values
        total = 0.0
        for value in values:
            term = cache.get((name, value))
            if term is None:
                hashed = value if name == "category" else zlib.crc32(value.encode())
                term = self.weight(name, hashed)
                if len(cache) >= CONTEXT_CACHE_SIZE:
                    cache.clear()
                cache[(name, value)] = term
            total += term
        return total

    def line_item_term(self, line_item: int) -> float:
        term = self._line_items.get(line_item)
        if term is None:
            m = self.model
            term = self.weight("line_item", line_item)
            term += m.numeric_weights[0] * m.line_item_ctr.get(line_item, 0.0)
            self._line_items[line_item] = term
        return term

    def creative_term(self, cr: CreativeSnap) -> float:
        """Its id's weight, its format's and size's (as the telemetry writes them: a
        banner's size, else the format), and its cold-start term."""
        size = cr.size if cr.format == "banner" else cr.format
        cached = self._creatives.get(cr.id)
        if cached is not None and cached[0] == cr.format and cached[1] == size:
            return cached[2]
        m = self.model
        term = self.weight("creative", cr.id) + self.weight("format", cr.format)
        term += self.weight("size", size)
        term += m.numeric_weights[1] * m.creative_ctr.get(cr.id, 0.0)
        self._creatives[cr.id] = (cr.format, size, term)
        return term

    def cross_weights(self, placement: int) -> dict[int, float]:
        table = self._cross.get(placement)
        if table is None:
            table = self._cross[placement] = {}
        return table

    def candidate_terms(self, placement: int) -> dict[Any, Any]:
        table = self._terms.get(placement)
        if table is None:
            table = self._terms[placement] = {}
        return table

    def cross_term(self, table: dict[int, float], placement: int, creative: int) -> float:
        term = table.get(creative)
        if term is None:
            term = table[creative] = self.weight("placement_x_creative", f"{placement}x{creative}")
        return term

    def how_term(self, how: int) -> float:
        term = self._how.get(how)
        if term is None:
            term = self._how[how] = self.weight("how", how)
        return term


class RequestScores:
    """The request's part of every candidate's score, computed once per request."""

    __slots__ = (
        "_base", "cross", "ctx", "cvr", "personalise", "placement", "scorer", "terms", "zones",
    )  # fmt: skip

    def __init__(
        self, scorer: ModelScorer, ctx: AdContext, placement: int, personalise: bool
    ) -> None:
        self.scorer = scorer
        self.ctx = ctx
        self.placement = placement
        self.personalise = personalise
        self._base: float | None = None  # on the first candidate scored
        self.cross = scorer.cross_weights(placement)
        self.terms = scorer.candidate_terms(placement)
        self.zones: dict[str, float] = {}
        # The live pCVR model's part of the request (`request_scores`), when one is live.
        self.cvr: RequestScores | None = None

    @property
    def base(self) -> float:
        """The bias and the request's context weights: every hash of the request, once, and
        looked up in the model's caches (contexts, categories, keywords recur)."""
        if self._base is not None:
            return self._base
        scorer, ctx = self.scorer, self.ctx
        geo, device = ctx.geo, ctx.device
        region = (geo.region or "") if self.personalise and scorer.uses_region else ""
        key = (self.placement, geo.country, device.devicetype, device.os, ctx.channel, region)
        contexts = scorer.contexts
        base = contexts.get(key)
        if base is None:
            weight = scorer.weight
            # The same values, and the same "" for a missing one, as
            # `serving.pctr.context_features` reads from a telemetry row.
            base = scorer.model.bias
            base += weight("placement", self.placement)
            base += weight("country", geo.country or "")
            base += weight("device_type", device.devicetype or "")
            base += weight("os", device.os or "")
            base += weight("channel", ctx.channel or "")
            if scorer.uses_region:
                base += weight("region", region)
            if len(contexts) >= CONTEXT_CACHE_SIZE:
                contexts.clear()
            contexts[key] = base
        if ctx.content_categories:
            base += scorer.terms_of("category", ctx.content_categories)
        if ctx.keywords:
            base += scorer.terms_of("keyword", ctx.keywords[:MAX_KEYWORDS])
        self._base = base
        return base

    def _zone_term(self, zone: str) -> float:
        term = self.zones.get(zone)
        if term is None:
            term = self.zones[zone] = self.scorer.how_term(hour_of_week(self.ctx.now, zone))
        return term

    def statics(self, c: "Candidate", creatives: tuple[CreativeSnap, ...]) -> tuple[float, ...]:
        """Per creative, its line item's, its own and its cross term with this placement:
        kept per placement and candidate while the candidate's creatives are the same
        objects (a new snapshot version that changed them makes new ones)."""
        s, table = self.scorer, self.terms
        key = (c.line_item.id, c.slot)
        entry = table.get(key)
        if entry is not None and entry[0] is creatives:
            return entry[1]
        li_term = s.line_item_term(c.line_item.id)
        cross, placement = self.cross, self.placement
        statics = tuple(
            li_term + s.creative_term(cr) + s.cross_term(cross, placement, cr.id)
            for cr in creatives
        )
        if creatives is c.creatives:  # not a per-request subset: worth keeping
            if len(table) >= TERMS_CACHE_SIZE:
                table.clear()
            table[key] = (creatives, statics)
        return statics

    def pctrs(self, c: "Candidate", creatives: tuple[CreativeSnap, ...]) -> tuple[float, ...]:
        """The model's pCTR of each creative this candidate may show here."""
        z = self.base + self._zone_term(c.line_item.time_zone)
        return tuple(sigmoid(z + t) for t in self.statics(c, creatives))

    def expected_pctr(
        self, c: "Candidate", creatives: tuple[CreativeSnap, ...], weights: tuple[int, ...]
    ) -> float:
        """The line item's pCTR: its creatives', weighted by how often each is drawn."""
        z = self.base + self._zone_term(c.line_item.time_zone)
        statics = self.statics(c, creatives)
        if len(statics) == 1:
            return sigmoid(z + statics[0])
        total = 0.0
        for t, w in zip(statics, weights, strict=True):
            total += sigmoid(z + t) * w
        return total / sum(weights)

    def expected_rates(
        self, c: "Candidate", creatives: tuple[CreativeSnap, ...], weights: tuple[int, ...]
    ) -> tuple[float, float]:
        """(pCTR, pCVR) of a target-CPA line item with the pCVR model `self.cvr` live: the
        pCTR expected over its creatives' draws, and the pCVR its conversions per click
        (sum of weight x pCTR x pCVR over sum of weight x pCTR, per creative)."""
        cvr = self.cvr
        assert cvr is not None  # noqa: S101 - only called with a pCVR model
        z = self.base + self._zone_term(c.line_item.time_zone)
        zc = cvr.base + cvr._zone_term(c.line_item.time_zone)
        statics, cvr_statics = self.statics(c, creatives), cvr.statics(c, creatives)
        if len(statics) == 1:
            return sigmoid(z + statics[0]), sigmoid(zc + cvr_statics[0])
        clicks = conversions = 0.0
        for t, tc, w in zip(statics, cvr_statics, weights, strict=True):
            p = sigmoid(z + t) * w
            clicks += p
            conversions += p * sigmoid(zc + tc)
        return clicks / sum(weights), conversions / clicks if clicks else 0.0


def request_scores(
    index: "Index", ctx: AdContext, placement: int, personalise: bool
) -> RequestScores | None:
    """The request's scores under the live models; None while no pCTR model is live (the
    pCVR model scores only beside it: a target-CPA bid needs both)."""
    scorer = index.scorer
    if scorer is None:
        return None
    scores = RequestScores(scorer, ctx, placement, personalise)
    if index.cvr_scorer is not None:
        scores.cvr = RequestScores(index.cvr_scorer, ctx, placement, personalise)
    return scores


def scored(li: LineItemSnap) -> bool:
    """Whether the model sets this line item's eCPM (CPC, or CPM toward a target CPA)."""
    return li.bid_type == "cpc" or li.target_cpa is not None


def model_ecpm(
    c: "Candidate",
    creatives: tuple[CreativeSnap, ...],
    weights: tuple[int, ...],
    scores: RequestScores,
) -> tuple[Decimal, float, float | None]:
    """(eCPM, the line item's pCTR, its pCVR: None for CPC) of a `scored` candidate; the
    eCPM never above `c.ecpm`, the bound the index sorts it by."""
    li = c.line_item
    if li.bid_type == "cpc":
        pctr = scores.expected_pctr(c, creatives, weights)
        if li.ctr_ceiling and pctr > li.ctr_ceiling:
            pctr = li.ctr_ceiling
        value = li.bid_micros * pctr * 10  # CPM in units of 0.0001
        pcvr = None
    else:
        if scores.cvr is not None:
            pctr, pcvr = scores.expected_rates(c, creatives, weights)
        else:
            pctr, pcvr = scores.expected_pctr(c, creatives, weights), li.pcvr
        value = li.target_cpa_micros * pctr * pcvr * 10
    ecpm = Decimal(round(value)).scaleb(-4)  # exact: four places, like the index's
    return (ecpm if ecpm < c.ecpm else c.ecpm), pctr, pcvr
