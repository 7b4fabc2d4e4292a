"""A bounds-checked reader over the six-bits-per-character base64url text of TC and GPP strings.

TC strings and GPP sections are big-endian bit streams written as URL-safe base64 without
padding. Strict base64 decoders reject lengths of 1 (mod 4) and non-zero pad bits, which real
strings have, so we map each character to its six bits ourselves and read fields from that.
Every read is checked: a string that ends early raises `TruncatedError` naming the field, so a
caller never sees a half-read result.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_SIXBITS = {char: format(index, "06b") for index, char in enumerate(ALPHABET)}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_RUNS = re.compile("1+")


class DecodeError(ValueError):
    """A privacy string that cannot be decoded; the message says why."""


class TruncatedError(DecodeError):
    """The string ended before `field` could be read."""

    def __init__(self, where: str, field: str, needed: int, available: int) -> None:
        super().__init__(f"{where}: {field} needs {needed} more bits, only {available} are left")
        self.field = field


def to_bits(text: str, *, what: str = "segment") -> str:
    """The text's bits as a '0'/'1' string, six per character."""
    if not text:
        raise DecodeError(f"{what} is empty")
    try:
        return "".join(_SIXBITS[char] for char in text)
    except KeyError:
        position, char = next((i, c) for i, c in enumerate(text) if c not in _SIXBITS)
        raise DecodeError(
            f"{what} has {char!r} at position {position}; only A-Z a-z 0-9 - _ are allowed"
        ) from None


class BitReader:
    """Reads fields in order from one base64url segment."""

    __slots__ = ("_bits", "_pos", "_what")

    def __init__(self, text: str, *, what: str = "segment") -> None:
        self._bits = to_bits(text, what=what)
        self._pos = 0
        self._what = what

    @property
    def position(self) -> int:
        """Bits read so far."""
        return self._pos

    @property
    def remaining(self) -> int:
        """Bits not read yet, padding included."""
        return len(self._bits) - self._pos

    def _take(self, count: int, field: str) -> str:
        if count > self.remaining:
            raise TruncatedError(self._what, field, count, self.remaining)
        chunk = self._bits[self._pos : self._pos + count]
        self._pos += count
        return chunk

    def read_int(self, width: int, field: str) -> int:
        """An unsigned big-endian integer of `width` bits."""
        return int(self._take(width, field), 2)

    def read_bool(self, field: str) -> bool:
        """One bit: 1 is true."""
        return self._take(1, field) == "1"

    def read_letters(self, count: int, field: str) -> str:
        """`count` letters of six bits each, A = 0 ... Z = 25."""
        letters = []
        for _ in range(count):
            value = self.read_int(6, field)
            if value > 25:
                raise DecodeError(f"{self._what}: {field} {value} is not a letter (A=0 ... Z=25)")
            letters.append(chr(ord("A") + value))
        return "".join(letters)

    def read_datetime(self, field: str) -> datetime:
        """A 36-bit count of deciseconds since the epoch, as an aware UTC datetime."""
        return _EPOCH + timedelta(milliseconds=100 * self.read_int(36, field))

    def read_bitfield(self, width: int, field: str) -> frozenset[int]:
        """The 1-based positions of the set bits among the next `width` bits."""
        chunk = self._take(width, field)
        return frozenset(index + 1 for index, bit in enumerate(chunk) if bit == "1")

    def read_bitfield_runs(self, width: int, field: str) -> tuple[tuple[int, int], ...]:
        """The set bits among the next `width` as inclusive 1-based (start, end) runs."""
        # Vendor bitfields run to tens of thousands of bits; runs keep them compact.
        chunk = self._take(width, field)
        return tuple((m.start() + 1, m.end()) for m in _ONE_RUNS.finditer(chunk))

    def read_fibonacci(self, field: str) -> int:
        """A Fibonacci-coded positive integer (the code ends at the first "11")."""
        total, previous, current = 0, 1, 1  # current walks 1, 2, 3, 5, 8, ...
        last_bit = False
        while True:
            bit = self.read_bool(field)
            if bit and last_bit:
                return total
            if bit:
                total += current
            previous, current = current, previous + current
            last_bit = bit

    def fail(self, reason: str) -> DecodeError:
        """An error about this segment's content, to raise."""
        return DecodeError(f"{self._what}: {reason}")

    def expect_padding(self) -> None:
        """Require that whatever is left is zero padding, not data we would ignore."""
        # Any length: encoders pad to 6, 8 or 24 bits, and older ones appended zero bytes.
        if "1" in self._bits[self._pos :]:
            raise self.fail("unexpected data after the last field")
