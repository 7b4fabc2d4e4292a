"""Decision ids: made by the server, unguessable and unique, cheap on the hot path.

A decision id is the de-duplication key of its impressions and clicks, the seed of its
pacing draws and tie-breaks, and the join key of its events, so a caller must not choose it
(a reused `x-request-id` would de-duplicate real impressions away and replay the same pacing
draw). It is 128 bits from the operating system's CSPRNG in 22 URL-safe base64 characters.
Random bytes are read 256 ids at a time (one syscall), which halves the cost of an id
(about 0.6 µs instead of 1.5 µs); a forked child starts on fresh bytes, never its parent's.

The caller's own request id (`x-request-id`, or an OpenRTB `BidRequest.id`) is kept as a
correlation id only: echoed and recorded with the request's events, never used as a key.
"""

import binascii
import os
import random
import re
import zlib

ID_BYTES = 16
_POOL_IDS = 256
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
# A caller's correlation id is kept when it is short and plain; otherwise it is ignored.
CORRELATION_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")

_pool = b""
_offset = 0


def _reset_after_fork() -> None:
    global _pool, _offset
    _pool, _offset = b"", 0


os.register_at_fork(after_in_child=_reset_after_fork)


def new_decision_id() -> str:
    """A fresh decision id (22 characters of base64url, 128 random bits)."""
    global _pool, _offset
    at = _offset
    if at >= len(_pool):
        _pool, at = os.urandom(ID_BYTES * _POOL_IDS), 0
    _offset = at + ID_BYTES
    # 16 bytes encode to 22 characters and two "=" of padding.
    return (
        binascii.b2a_base64(_pool[at : at + ID_BYTES], newline=False)[:22]
        .translate(_TO_URLSAFE)
        .decode()
    )


class _SeededOnFirstDraw(random.Random):
    """`random.Random(seed)` that runs the seeding on its first draw. Seeding the Mersenne
    Twister costs about 25,000 instructions (2 % of a request), and most decisions draw
    nothing (no pacing throttle, one creative, no tie). The draws are exactly those of
    `random.Random(seed)`; after the first, they go straight to the C generator."""

    def __init__(self, seed: int) -> None:  # no super().__init__(): that seeds
        self._seed_on_first_draw: int | None = seed
        self.gauss_next = None

    def _start(self, seed: int) -> None:
        self._seed_on_first_draw = None
        super().seed(seed)
        # Instance attributes win over the class's methods: later draws skip this class
        # (a caller holding a bound method from before, as _randbelow does, still comes here).
        self.random = super().random  # type: ignore[method-assign]
        self.getrandbits = super().getrandbits  # type: ignore[method-assign]

    def random(self) -> float:
        if self._seed_on_first_draw is not None:
            self._start(self._seed_on_first_draw)
        return super().random()

    def getrandbits(self, k: int, /) -> int:
        if self._seed_on_first_draw is not None:
            self._start(self._seed_on_first_draw)
        return super().getrandbits(k)


def decision_rng(decision_id: str) -> random.Random:
    """The generator of a decision's pacing draws, tie-breaks and rotation: the same decision
    id gives the same draws, so a decision replays exactly (`?explain=1`, tests)."""
    return _SeededOnFirstDraw(zlib.crc32(decision_id.encode()))


def correlation_id(value: str | None) -> str:
    """The caller's request id if it is fit to echo and record, else ""."""
    if value and CORRELATION_ID_RE.match(value):
        return value
    return ""
