"""Pseudonymous user ids: a keyed hash whose key rotates on a schedule, with nothing stored.

The key of each rotation period is derived from one secret and the period's number:

    period_key = HMAC-SHA256(secret, b"period:<floor(now / rotation_seconds)>")
    pseudonym  = base64url(HMAC-SHA256(period_key, raw_id)[:16]), no padding (22 characters)

So the same id maps to the same pseudonym within a period (frequency caps and reports work)
and to an unrelated one in the next (the stored data of two periods cannot be joined without
the secret). No key is ever stored; an old period's key is "forgotten" only in the sense that
nothing keeps it. The trade-off: whoever holds the secret can recompute any period's key,
which is what lets a data-subject request find the data of past periods. Rotating the secret
itself (PSEUDONYM_SECRET) breaks that linkability completely: what was stored before can then
no longer be tied to anyone, not even by us, and no longer be found by an access or erasure
request either.

Raw user ids and device ids (IFA) are never stored; serving stores only `pseudonym(...)`, and
only when consent allows ids.
"""

import base64
import hmac
import math
from threading import Lock
from typing import Self

from django.conf import settings

DIGEST_BYTES = 16  # 128 bits: collisions are out of reach, the text stays short
DAY = 86400
# The current period and the one before are all a busy process ever needs.
_CACHED_PERIODS = 4


class Pseudonymiser:
    """Turns a raw user or device id into the rotating keyed hash that may be stored."""

    def __init__(self, secret: bytes, rotation_seconds: int) -> None:
        if not secret:
            raise ValueError("the pseudonym secret is empty")
        if rotation_seconds <= 0:
            raise ValueError("the rotation period must be positive")
        self._secret = secret
        self.rotation_seconds = rotation_seconds
        self._keys: dict[int, bytes] = {}
        self._lock = Lock()

    @classmethod
    def from_settings(cls) -> Self:
        """The project's pseudonymiser: PSEUDONYM_SECRET, rotating every PSEUDONYM_ROTATION_DAYS."""
        return cls(settings.PSEUDONYM_SECRET.encode(), settings.PSEUDONYM_ROTATION_DAYS * DAY)

    def period(self, now: float) -> int:
        return math.floor(now / self.rotation_seconds)

    def _period_key(self, period: int) -> bytes:
        key = self._keys.get(period)
        if key is None:
            key = hmac.digest(self._secret, b"period:%d" % period, "sha256")
            with self._lock:
                if len(self._keys) >= _CACHED_PERIODS:
                    self._keys.clear()
                self._keys[period] = key
        return key

    def _for_period(self, raw_id: str, period: int) -> str:
        digest = hmac.digest(self._period_key(period), raw_id.encode(), "sha256")
        return base64.urlsafe_b64encode(digest[:DIGEST_BYTES]).rstrip(b"=").decode("ascii")

    def pseudonym(self, raw_id: str, now: float) -> str:
        """The pseudonym of an id at time `now` (epoch seconds)."""
        return self._for_period(raw_id, self.period(now))

    def pseudonyms_between(self, raw_id: str, start: float, end: float) -> list[str]:
        """The id's pseudonyms in every period overlapping [start, end], oldest first."""
        if end < start:
            start, end = end, start
        return [
            self._for_period(raw_id, p) for p in range(self.period(start), self.period(end) + 1)
        ]

    def fingerprint(self, raw_id: str) -> str:
        """A short tag for showing which subject a request was about, without the id.

        Eight hex characters (32 bits) of a keyed hash that does not rotate: enough for staff
        to recognise a repeated request, too short to single anyone out among many users, and
        not reversible without the secret.
        """
        digest = hmac.digest(self._secret, b"fingerprint:" + raw_id.encode(), "sha256")
        return digest[:4].hex()
