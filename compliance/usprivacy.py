"""Parse IAB US Privacy (CCPA) strings such as "1YNN"."""

from __future__ import annotations

from dataclasses import dataclass

from compliance.bits import DecodeError

__all__ = ["DecodeError", "UsPrivacy", "parse_us_privacy"]

_FLAGS = {"Y": True, "N": False, "-": None}


@dataclass(frozen=True, slots=True)
class UsPrivacy:
    """A US Privacy string; None means the field does not apply ("-")."""

    version: int
    notice: bool | None
    opt_out_of_sale: bool | None
    lspa_covered: bool | None

    @property
    def opted_out(self) -> bool:
        """The user opted out of the sale of their personal information."""
        return self.opt_out_of_sale is True

    @property
    def applies(self) -> bool:
        """CCPA applies to this request ("1---" says it does not)."""
        return not (
            self.notice is None and self.opt_out_of_sale is None and self.lspa_covered is None
        )

    def __str__(self) -> str:
        flags = {value: char for char, value in _FLAGS.items()}
        fields = (self.notice, self.opt_out_of_sale, self.lspa_covered)
        return f"{self.version}" + "".join(flags[field] for field in fields)


def parse_us_privacy(text: str) -> UsPrivacy:
    """Parse a US Privacy string, or raise DecodeError saying why it is not one."""
    if len(text) != 4:
        raise DecodeError(f"a US Privacy string has 4 characters, not {len(text)}")
    if text[0] != "1":
        raise DecodeError(f"US Privacy version {text[0]!r} is not supported; only 1 is")
    for position, char in enumerate(text[1:], start=2):
        if char not in _FLAGS:
            raise DecodeError(f"US Privacy character {position} is {char!r}; use Y, N or -")
    return UsPrivacy(1, _FLAGS[text[1]], _FLAGS[text[2]], _FLAGS[text[3]])
