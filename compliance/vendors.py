"""A buyer's legal bases under GDPR, judged by what its vendor declares in the Global Vendor
List together with the TC string (TCF v2.2 policy, "legal basis per vendor and purpose").

For each purpose: a publisher restriction of type 0 forbids it; otherwise the basis is the
vendor's declared default (consent when the GVL lists the purpose under `purposes`,
legitimate interest under `legIntPurposes`), which a restriction of type 1 or 2 may switch
only for a purpose the vendor declared flexible (a restriction asking for a basis the vendor
cannot use leaves it none). Then the purpose signal and the vendor signal of that basis must
both be set. A purpose the vendor does not declare has no basis at all.

Serving never parses the GVL: each buyer's declarations are computed when the snapshot is
built (`VendorClaims` in `serving.snapshot`), and a buyer's decision is cached per TC string.
"""

from typing import Protocol

from compliance.tcf import RestrictionType, TCString

CONSENT, LEGITIMATE_INTEREST = "consent", "li"


class VendorDeclarations(Protocol):
    """What a vendor declares in the GVL (`serving.snapshot.VendorClaims` is one)."""

    @property
    def listed(self) -> bool: ...  # False: not in the GVL, or deleted from it

    @property
    def purposes(self) -> frozenset[int]: ...  # consent is the default basis

    @property
    def leg_int_purposes(self) -> frozenset[int]: ...  # legitimate interest is

    @property
    def flexible_purposes(self) -> frozenset[int]: ...

    @property
    def special_features(self) -> frozenset[int]: ...


def legal_basis(
    tcf: TCString,
    purpose: int,
    vendor: int,
    claims: VendorDeclarations,
    *,
    li_allowed: bool = True,
) -> str:
    """CONSENT or LEGITIMATE_INTEREST when the vendor has that basis for the purpose in this
    TC string; otherwise why not ("not_declared", "restricted", "no_consent", "no_li")."""
    restriction = tcf.restriction(purpose, vendor)
    if restriction == RestrictionType.NOT_ALLOWED:
        return "restricted"
    by_consent = purpose in claims.purposes
    by_li = purpose in claims.leg_int_purposes
    if not by_consent and not by_li:
        return "not_declared"
    flexible = purpose in claims.flexible_purposes
    if restriction == RestrictionType.REQUIRE_CONSENT:
        if not (by_consent or flexible):
            return "restricted"
        basis = CONSENT
    elif restriction == RestrictionType.REQUIRE_LEGITIMATE_INTEREST:
        if not (by_li or flexible):
            return "restricted"
        basis = LEGITIMATE_INTEREST
    else:
        basis = CONSENT if by_consent else LEGITIMATE_INTEREST
    if basis == CONSENT:
        ok = tcf.purpose_consent(purpose) and tcf.vendor_consent(vendor)
        return CONSENT if ok else "no_consent"
    # TCF 2.2 allows no legitimate interest for purposes 3 to 6.
    ok = li_allowed and tcf.purpose_li(purpose) and tcf.vendor_li(vendor)
    return LEGITIMATE_INTEREST if ok else "no_li"


def has_basis(result: str) -> bool:
    return result in (CONSENT, LEGITIMATE_INTEREST)
