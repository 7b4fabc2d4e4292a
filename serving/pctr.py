"""The pCTR model's features and its scorer, shared by training and serving (docs/learning.md).

A model is a logistic regression over hashed features: each feature is a `name=value` string
hashed (CRC-32) into `2**bits` slots, and the predicted click-through rate is
`sigmoid(bias + sum of the slots' weights + the cold-start terms)`. Calibration is folded
into the weights at training time, so scoring is one sum and one `exp`. The features are all
contextual but one, the region, which is only there where consent allowed personalising
(no user id ever), so the same model scores every request. Plain Python, no I/O: serving
can score in process from the weights the snapshot carries (`serving.scoring`).
"""

import math
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

FEATURE_SET = "ctx-v2"
# Names of the single-valued context features, in the order `context_features` hashes them.
# `region` is personal: the telemetry files hold it only where consent allowed personalising,
# and serving passes it only then ("" otherwise, as in every other row); ctx-v1 lacked it.
CONTEXT = (
    "placement", "country", "device_type", "os", "size", "format", "channel", "how", "region"
)  # fmt: skip
FEATURES = (*CONTEXT, "category", "keyword", "line_item", "creative", "placement_x_creative")
# The cold-start terms: the line item's and the creative's smoothed CTR from the training
# window, as a logit offset from the window's overall CTR (0 for one never seen).
NUMERIC = ("line_item_ctr", "creative_ctr")


class CtrModel(msgspec.Struct, frozen=True):
    """A trained model as it is stored (`ModelVersion.weights`) and published."""

    version: int  # the ModelVersion id
    feature_set: str
    bits: int
    bias: float
    indices: list[int]  # the non-zero slots...
    weights: list[float]  # ...and their weights, parallel
    # Logit offsets of smoothed CTRs (see NUMERIC), by id, and their two weights.
    line_item_ctr: dict[int, float] = {}
    creative_ctr: dict[int, float] = {}
    numeric_weights: tuple[float, float] = (0.0, 0.0)
    # The training window's CTR (0: a model from before it was kept): with the smoothed
    # CTRs, a line item's prior, from which the snapshot sets its pCTR ceiling.
    base_ctr: float = 0.0

    def prior_ctr(self, line_item: int) -> float:
        """The line item's smoothed CTR of the training window (the window's for a new one)."""
        base = self.base_ctr
        offset = self.line_item_ctr.get(line_item, 0.0)
        if not 0 < base < 1:
            return 0.0
        return sigmoid(math.log(base / (1 - base)) + offset)


def slot(name: str, value: object, mask: int) -> int:
    return zlib.crc32(f"{name}={value}".encode()) & mask


def context_features(row: Mapping[str, Any]) -> list[tuple[str, object]]:
    """The (name, value) pairs of a slot's context, from a telemetry row or serving's values."""
    pairs: list[tuple[str, object]] = [(name, row.get(name) or "") for name in CONTEXT]
    pairs.extend(("category", c) for c in row.get("content_categories") or ())
    pairs.extend(("keyword", k) for k in row.get("keyword_hashes") or ())
    return pairs


def candidate_features(
    placement: object, line_item: int, creative: int
) -> list[tuple[str, object]]:
    return [
        ("line_item", line_item),
        ("creative", creative),
        ("placement_x_creative", f"{placement}x{creative}"),
    ]


def hashed(pairs: Iterable[tuple[str, object]], bits: int) -> list[int]:
    mask = (1 << bits) - 1
    return [slot(name, value, mask) for name, value in pairs]


def sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class Scorer:
    """A model made ready to score: its weights in a dict, built once per published model."""

    def __init__(self, model: CtrModel) -> None:
        self.model = model
        self.mask = (1 << model.bits) - 1
        self.weights = dict(zip(model.indices, model.weights, strict=True))

    def weight(self, name: str, value: object) -> float:
        """The weight of the `name=value` feature's slot (0 where the model has none)."""
        return self.weights.get(slot(name, value, self.mask), 0.0)

    def context_sum(self, row: Mapping[str, Any]) -> float:
        """The bias and the context's weights: the same for every candidate of a slot."""
        w, mask = self.weights, self.mask
        total = self.model.bias
        for name, value in context_features(row):
            total += w.get(slot(name, value, mask), 0.0)
        return total

    def predict(
        self, context_sum: float, placement: object, line_item: int, creative: int
    ) -> float:
        """pCTR of one candidate, given its slot's `context_sum`."""
        w, mask, m = self.weights, self.mask, self.model
        z = context_sum
        for name, value in candidate_features(placement, line_item, creative):
            z += w.get(slot(name, value, mask), 0.0)
        z += m.numeric_weights[0] * m.line_item_ctr.get(line_item, 0.0)
        z += m.numeric_weights[1] * m.creative_ctr.get(creative, 0.0)
        return sigmoid(z)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(CtrModel)


def encode_model(model: CtrModel) -> bytes:
    """The compact blob: JSON of the non-zero weights, zlib-compressed."""
    return zlib.compress(_encoder.encode(model), 9)


def decode_model(blob: bytes) -> CtrModel:
    return _decoder.decode(zlib.decompress(blob))
