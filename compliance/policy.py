"""The privacy policy: one function turns a request's privacy signals into permissions.

Serving asks only this function what it may do. This first version implements the rules of
DESIGN.md that need no TC-string decoding: GDPR without a consent string means no ad, and
US Privacy opt-out, COPPA and limit-ad-tracking turn personalisation and ids off. The full
TCF/GPP decoding replaces `_has_tc_string` with a real purpose and vendor check.
"""

import re
from dataclasses import dataclass

# TC strings are base64url segments joined by dots.
_TC_STRING_RE = re.compile(r"^[A-Za-z0-9_-]{20,}(\.[A-Za-z0-9_-]+)*$")
_US_PRIVACY_RE = re.compile(r"^1[YN-][YN-][YN-]$")


@dataclass(frozen=True, slots=True)
class PrivacySignals:
    gdpr: int | None = None
    tc_string: str | None = None
    us_privacy: str | None = None
    coppa: int | None = None
    gpc: str | None = None
    lmt: int | None = None


@dataclass(frozen=True, slots=True)
class Permissions:
    serve: bool
    personalise: bool
    use_ids: bool
    reason: str = ""


def _has_tc_string(tc_string: str | None) -> bool:
    return bool(tc_string) and bool(_TC_STRING_RE.match(tc_string or ""))


def _us_privacy_opted_out(us_privacy: str | None) -> bool:
    # "1YYN": version 1, notice given, opted out of sale (third character), LSPA.
    return bool(us_privacy and _US_PRIVACY_RE.match(us_privacy) and us_privacy[2] == "Y")


def evaluate(signals: PrivacySignals) -> Permissions:
    """What this request allows: serve at all, personalise, use ids."""
    if signals.gdpr == 1 and not _has_tc_string(signals.tc_string):
        return Permissions(serve=False, personalise=False, use_ids=False, reason="gdpr_no_consent")
    if signals.coppa == 1:
        return Permissions(serve=True, personalise=False, use_ids=False, reason="coppa")
    if _us_privacy_opted_out(signals.us_privacy):
        return Permissions(
            serve=True, personalise=False, use_ids=False, reason="us_privacy_opt_out"
        )
    if signals.lmt == 1 or signals.gpc == "1":
        return Permissions(serve=True, personalise=False, use_ids=False, reason="limit_tracking")
    return Permissions(serve=True, personalise=True, use_ids=True)
