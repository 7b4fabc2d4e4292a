"""Pseudonymous ids: a keyed hash, stable within a rotation period, unrelated across periods."""

import base64
import hashlib
import hmac
import re
from typing import Any

import pytest

from compliance.pseudonym import DAY, Pseudonymiser

SECRET = b"test-secret"
ROTATION = 30 * DAY
PERIOD_START = 1000 * ROTATION  # the first second of period 1000


def reference(secret: bytes, raw_id: str, period: int) -> str:
    """The specification, written out independently of the implementation."""
    period_key = hmac.new(secret, f"period:{period}".encode(), hashlib.sha256).digest()
    digest = hmac.new(period_key, raw_id.encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def test_a_pseudonym_is_the_keyed_hash_of_the_id_under_the_period_key() -> None:
    p = Pseudonymiser(SECRET, ROTATION)

    value = p.pseudonym("user-42", PERIOD_START + 5)

    assert value == reference(SECRET, "user-42", 1000)
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", value)  # 16 bytes, base64url, no padding


def test_a_pseudonym_is_stable_within_a_period() -> None:
    p = Pseudonymiser(SECRET, ROTATION)

    first = p.pseudonym("user-42", PERIOD_START)

    assert p.pseudonym("user-42", PERIOD_START + ROTATION / 2) == first
    assert p.pseudonym("user-42", PERIOD_START + ROTATION - 0.001) == first


def test_a_pseudonym_changes_with_the_period_and_with_the_secret() -> None:
    p = Pseudonymiser(SECRET, ROTATION)

    now = p.pseudonym("user-42", PERIOD_START)
    before = p.pseudonym("user-42", PERIOD_START - 1)
    after = p.pseudonym("user-42", PERIOD_START + ROTATION)
    other_secret = Pseudonymiser(b"another-secret", ROTATION).pseudonym("user-42", PERIOD_START)

    assert len({now, before, after, other_secret}) == 4
    assert before == reference(SECRET, "user-42", 999)
    assert after == reference(SECRET, "user-42", 1001)


def test_different_ids_get_different_pseudonyms() -> None:
    p = Pseudonymiser(SECRET, ROTATION)

    values = {p.pseudonym(f"user-{n}", PERIOD_START) for n in range(1000)}

    assert len(values) == 1000


def test_pseudonyms_between_covers_every_period_overlapping_the_window() -> None:
    p = Pseudonymiser(SECRET, ROTATION)
    start = PERIOD_START + ROTATION - 10  # the last seconds of period 1000
    end = PERIOD_START + 2 * ROTATION + 10  # the first seconds of period 1002

    values = p.pseudonyms_between("user-42", start, end)

    assert values == [reference(SECRET, "user-42", n) for n in (1000, 1001, 1002)]
    assert p.pseudonyms_between("user-42", start, start) == [p.pseudonym("user-42", start)]
    assert p.pseudonyms_between("user-42", end, start) == values  # either order


def test_the_period_key_cache_stays_correct_across_many_periods() -> None:
    p = Pseudonymiser(SECRET, 60)

    values = [p.pseudonym("user-42", n * 60.0) for n in range(10)] + [p.pseudonym("user-42", 0.0)]

    assert values == [reference(SECRET, "user-42", n) for n in [*range(10), 0]]


def test_the_project_pseudonymiser_uses_its_own_secret_and_rotation(settings: Any) -> None:
    settings.PSEUDONYM_SECRET = "configured-secret"
    settings.PSEUDONYM_ROTATION_DAYS = 7

    p = Pseudonymiser.from_settings()

    assert p.rotation_seconds == 7 * DAY
    assert p.pseudonym("user-42", 0) == reference(b"configured-secret", "user-42", 0)


def test_the_secret_is_its_own_and_rotates_every_30_days() -> None:
    from django.conf import settings

    # Never derived from the session key (tests/security/test_secrets.py: nor from anything).
    assert settings.PSEUDONYM_SECRET != settings.SECRET_KEY
    assert settings.PSEUDONYM_ROTATION_DAYS == 30


def test_a_fingerprint_is_short_stable_and_not_the_id() -> None:
    p = Pseudonymiser(SECRET, ROTATION)

    tag = p.fingerprint("user-42")

    assert re.fullmatch(r"[0-9a-f]{8}", tag)
    assert Pseudonymiser(SECRET, 60).fingerprint("user-42") == tag  # not tied to a period
    assert p.fingerprint("user-43") != tag


def test_an_empty_secret_or_period_is_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        Pseudonymiser(b"", ROTATION)
    with pytest.raises(ValueError, match="rotation"):
        Pseudonymiser(SECRET, 0)
