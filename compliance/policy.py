"""The privacy policy: one function turns a request's privacy signals into permissions.

Serving asks only `evaluate`. The rules are DESIGN.md's; where it is silent we follow what
Prebid Server does:

- GDPR applies (`regs.gdpr = 1`, a GPP string carrying tcfeuv2 in `gpp_sid`, or no
  `regs.gdpr` and a country in `GDPR_COUNTRIES`, see `apply_gdpr_by_geography`): without a
  valid TC string, no ad. An ad needs a legal basis for purpose 2 (basic ads) for our vendor
  id: purpose consent and vendor consent, or purpose LI and vendor LI, and no publisher
  restriction against it. Personalisation needs consent for purposes 3 and 4 (TCF 2.2 allows
  no LI there); ids on the device need purpose 1 consent; measurement purpose 7 consent or LI.
  Precise geo needs special feature 1.
- US Privacy opt-out of sale, a GPP usnat/usca opt-out of sale, sharing or targeted ads,
  `device.lmt = 1`, `Sec-GPC: 1` and COPPA: no personalisation, no ids and no precise geo
  (DESIGN.md: anonymised outbound requests with coarse geo).
- Each external buyer is judged with its own vendor id. With a Global Vendor List loaded,
  by what that vendor declares there (`compliance.vendors`): a purpose's basis is the
  declared one (flexible purposes switched only by a publisher restriction), precise geo
  needs special feature 1 opted in and declared, and a vendor absent from the list is not
  called. Without a GVL, by the TC string alone.
"""

from dataclasses import dataclass, field, replace
from functools import lru_cache

from compliance.bits import DecodeError
from compliance.gpp import GppString, decode_gpp
from compliance.gpp_states import us_opt_out
from compliance.tcf import RestrictionType, TCString, decode_tc_string
from compliance.usprivacy import UsPrivacy, parse_us_privacy
from compliance.vendors import VendorDeclarations, has_basis, legal_basis

PURPOSE_STORE = 1
PURPOSE_BASIC_ADS = 2
PURPOSES_PERSONALISED = (3, 4)
PURPOSE_MEASURE = 7
FEATURE_PRECISE_GEO = 1
GPP_TCFEUV2 = 2
# GPP section ids of the US sections: usnat (7), usca (8) and the states 9 to 22.
US_SECTIONS_FIRST, US_SECTIONS_LAST = 7, 22


@dataclass(frozen=True, slots=True)
class PrivacySignals:
    gdpr: int | None = None
    tc_string: str | None = None
    us_privacy: str | None = None
    gpp: str | None = None
    gpp_sid: tuple[int, ...] = ()
    coppa: int | None = None
    gpc: str | None = None
    lmt: int | None = None
    # regs.gdpr was absent and the request's country is one where GDPR applies (see
    # `apply_gdpr_by_geography`); `gdpr` is then 1 and the ledger says why.
    gdpr_by_geo: bool = False


def apply_gdpr_by_geography(
    signals: PrivacySignals, country: str | None, countries: frozenset[str]
) -> PrivacySignals:
    """The signals with gdpr = 1 when the request did not say and comes from a GDPR country.

    An explicit `regs.gdpr` (0 or 1) always wins: the publisher knows its legal position
    better than a geo lookup. Prebid Server does the same with its EEA country list."""
    if signals.gdpr is not None or not country or country.upper() not in countries:
        return signals
    return replace(signals, gdpr=1, gdpr_by_geo=True)


@dataclass(frozen=True, slots=True)
class BuyerPermission:
    call: bool
    send_ids: bool
    send_precise_geo: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Permissions:
    serve: bool
    personalise: bool = False
    use_ids: bool = False  # store or read ids on the device
    measure: bool = False
    precise_geo: bool = False
    reason: str = ""
    # What was seen, for the consent ledger: e.g. ("gdpr=1", "tcf=valid", "p2=yes").
    ledger: tuple[str, ...] = ()
    _tcf: TCString | None = field(default=None, repr=False, compare=False)
    _restricted: bool = field(default=False, repr=False, compare=False)
    # The text the TC string came in (itself, or the GPP string carrying it): a cache key.
    _tc_key: str = field(default="", repr=False, compare=False)

    @property
    def outcome(self) -> str:
        """blocked, contextual or personalised: what the request was allowed."""
        if not self.serve:
            return "blocked"
        return "personalised" if self.personalise else "contextual"

    def ledger_text(self) -> str:
        """The compact record every serving event carries, e.g. `gdpr=1 tcf=valid p2=yes p34=no
        → contextual`."""
        seen = " ".join(self.ledger)
        decided = f"{self.outcome}:{self.reason}" if self.reason else self.outcome
        return f"{seen} → {decided}" if seen else f"→ {decided}"

    def for_buyer(
        self, vendor_id: int | None, claims: VendorDeclarations | None = None
    ) -> BuyerPermission:
        """Whether a buyer may be called, and with what. `claims` are its vendor's GVL
        declarations when a GVL is loaded (None: judged by the TC string alone)."""
        if not self.serve:
            return BuyerPermission(False, False, False, self.reason)
        if self._tcf is None:
            return BuyerPermission(True, self.personalise, self.precise_geo)
        if vendor_id is None:
            return BuyerPermission(False, False, False, "buyer_has_no_gvl_id")
        if claims is not None:
            return _cached_buyer_permission(self, vendor_id, claims)
        if not _basic_ads_allowed(self._tcf, vendor_id):
            return BuyerPermission(False, False, False, "buyer_no_purpose_2_basis")
        ids = not self._restricted and _personalised_allowed(self._tcf, vendor_id)
        return BuyerPermission(True, ids, self.precise_geo and ids)

    def sync_refusal(self, vendor_id: int | None, claims: VendorDeclarations | None) -> str:
        """Why a user sync with this buyer may not happen, or "" when it may.

        A sync stores and reads ids on the device for us and for the buyer (TCF purpose 1,
        consent only: Prebid Server's cookie-sync rule) and exists to hand the buyer its id in
        later bid requests: so we must be allowed ids and personalisation, and the buyer must
        have a purpose-1 consent basis and be allowed ids itself."""
        if not self.serve:
            return self.reason
        if not (self.use_ids and self.personalise):
            return self.reason or "no_ids"
        permission = self.for_buyer(vendor_id, claims)
        if not permission.call:
            return permission.reason
        if not permission.send_ids:
            return "buyer_no_ids"
        tcf = self._tcf
        if tcf is not None and vendor_id is not None:
            if claims is not None:
                storage = legal_basis(tcf, PURPOSE_STORE, vendor_id, claims, li_allowed=False)
                allowed = has_basis(storage)
            else:
                allowed = _basis(tcf, PURPOSE_STORE, vendor_id, li_allowed=False)
            if not allowed:
                return "buyer_no_purpose_1_consent"
        return ""

    def explain_buyer(
        self, vendor_id: int | None, claims: VendorDeclarations | None
    ) -> dict[str, object]:
        """The decision for one buyer and, under GDPR with a GVL, the basis found for each
        purpose that decides it (`?explain=1`)."""
        permission = self.for_buyer(vendor_id, claims)
        bases: dict[str, str] = {}
        if self._tcf is not None and vendor_id is not None and claims is not None:
            if claims.listed:
                for purpose in (PURPOSE_BASIC_ADS, *PURPOSES_PERSONALISED):
                    bases[f"p{purpose}"] = legal_basis(
                        self._tcf, purpose, vendor_id, claims, li_allowed=purpose == 2
                    )
                bases["sf1"] = (
                    "declared" if FEATURE_PRECISE_GEO in claims.special_features else "undeclared"
                )
            else:
                bases["gvl"] = "absent"
        return {
            "call": permission.call,
            "send_ids": permission.send_ids,
            "send_precise_geo": permission.send_precise_geo,
            "reason": permission.reason,
            "bases": bases,
        }


# (TC string, vendor, its claims, restricted, precise geo) → the buyer's permission. The
# same strings come back again and again; judging one costs a dozen bit and range lookups.
_BUYER_CACHE: dict[tuple[str, int, VendorDeclarations, bool, bool], BuyerPermission] = {}
_BUYER_CACHE_SIZE = 16384


def _cached_buyer_permission(
    permissions: Permissions, vendor_id: int, claims: VendorDeclarations
) -> BuyerPermission:
    key = (permissions._tc_key, vendor_id, claims, permissions._restricted, permissions.precise_geo)
    hit = _BUYER_CACHE.get(key)
    if hit is None:
        if len(_BUYER_CACHE) >= _BUYER_CACHE_SIZE:
            _BUYER_CACHE.clear()
        assert permissions._tcf is not None  # noqa: S101 - for_buyer checked it
        hit = _BUYER_CACHE[key] = _judge_buyer(
            permissions._tcf, vendor_id, claims, permissions._restricted, permissions.precise_geo
        )
    return hit


def _judge_buyer(
    tcf: TCString, vendor: int, claims: VendorDeclarations, restricted: bool, precise: bool
) -> BuyerPermission:
    """Prebid Server's rules on the GVL: purpose 2 to be called, purposes 3 and 4 (consent
    only) for ids, special feature 1 opted in *and* declared for precise geo."""
    if not claims.listed:
        # Not in the GVL (or deleted from it): it cannot have a legal basis for anything.
        return BuyerPermission(False, False, False, "buyer_not_in_gvl")
    if not has_basis(legal_basis(tcf, PURPOSE_BASIC_ADS, vendor, claims)):
        return BuyerPermission(False, False, False, "buyer_no_purpose_2_basis")
    ids = not restricted and all(
        has_basis(legal_basis(tcf, p, vendor, claims, li_allowed=False))
        for p in PURPOSES_PERSONALISED
    )
    geo = precise and ids and FEATURE_PRECISE_GEO in claims.special_features
    return BuyerPermission(True, ids, geo)


@lru_cache(maxsize=8192)
def _tc(text: str) -> TCString:
    # The same users send the same strings again and again; decoding costs ~100 µs.
    return decode_tc_string(text)


@lru_cache(maxsize=4096)
def _gpp(text: str, sids: tuple[int, ...]) -> GppString:
    return decode_gpp(text).applicable_sections(sids)


def _basis(tcf: TCString, purpose: int, vendor: int, li_allowed: bool = True) -> bool:
    restriction = tcf.restriction(purpose, vendor)
    if restriction == RestrictionType.NOT_ALLOWED:
        return False
    consent = tcf.purpose_consent(purpose) and tcf.vendor_consent(vendor)
    li = li_allowed and tcf.purpose_li(purpose) and tcf.vendor_li(vendor)
    if restriction == RestrictionType.REQUIRE_CONSENT:
        return consent
    if restriction == RestrictionType.REQUIRE_LEGITIMATE_INTEREST:
        return li
    return consent or li


def _basic_ads_allowed(tcf: TCString, vendor: int) -> bool:
    return _basis(tcf, PURPOSE_BASIC_ADS, vendor)


def _personalised_allowed(tcf: TCString, vendor: int) -> bool:
    return all(_basis(tcf, p, vendor, li_allowed=False) for p in PURPOSES_PERSONALISED)


def _us_opt_out(usp: UsPrivacy | None, gpp: GppString | None) -> str:
    if usp is not None and usp.opted_out:
        return "us_privacy_opt_out"
    if gpp is not None:
        # Every US section that applies (usnat, usca, the states 9-22) by one rule
        # (`compliance.gpp_states.us_opt_out`).
        for section_id in gpp.section_ids:
            if US_SECTIONS_FIRST <= section_id <= US_SECTIONS_LAST:
                why = us_opt_out(gpp.sections[section_id])
                if why == "unsupported_version":
                    return "gpp_section_unsupported"
                if why:
                    return "gpp_us_opt_out"
        if gpp.us_privacy is not None and gpp.us_privacy.opted_out:
            return "us_privacy_opt_out"
    return ""


def evaluate(signals: PrivacySignals, our_vendor_id: int) -> Permissions:
    """What this request allows: serve, personalise, ids, measurement, precise geo, buyers."""
    ledger: list[str] = []
    gpp: GppString | None = None
    if signals.gpp:
        try:
            gpp = _gpp(signals.gpp, tuple(signals.gpp_sid))
            ledger.append("gpp=valid")
        except DecodeError:
            ledger.append("gpp=invalid")
    usp: UsPrivacy | None = None
    if signals.us_privacy:
        try:
            usp = parse_us_privacy(signals.us_privacy)
            ledger.append(f"usp={usp}")
        except DecodeError:
            ledger.append("usp=invalid")

    tcf: TCString | None = None
    gdpr = signals.gdpr == 1 or (gpp is not None and GPP_TCFEUV2 in gpp.section_ids)
    if gdpr:
        ledger.append("gdpr=1" + ("(geo)" if signals.gdpr_by_geo else ""))
        text = signals.tc_string
        if text:
            try:
                tcf = _tc(text)
            except DecodeError:
                tcf = None
        elif gpp is not None:
            tcf = gpp.tcf_eu_v2
        if tcf is None:
            ledger.append("tcf=" + ("invalid" if text else "missing"))
            return Permissions(serve=False, reason="gdpr_no_consent", ledger=tuple(ledger))
        ledger.append("tcf=valid")
        if not _basic_ads_allowed(tcf, our_vendor_id):
            ledger.append("p2=no")
            return Permissions(serve=False, reason="gdpr_no_purpose_2", ledger=tuple(ledger))
        ledger.append("p2=yes")

    restricted = ""
    if signals.coppa == 1:
        restricted = "coppa"
    elif signals.lmt == 1:
        restricted = "limit_ad_tracking"
    elif signals.gpc == "1":
        restricted = "gpc"
    else:
        restricted = _us_opt_out(usp, gpp)
    if restricted:
        ledger.append(f"restricted={restricted}")

    personalise = not restricted and (tcf is None or _personalised_allowed(tcf, our_vendor_id))
    store = tcf is None or _basis(tcf, PURPOSE_STORE, our_vendor_id, li_allowed=False)
    measure = tcf is None or _basis(tcf, PURPOSE_MEASURE, our_vendor_id)
    # DESIGN.md: every restriction (COPPA, LMT, GPC, US opt-outs) means coarse geo outbound.
    precise_geo = not restricted and (
        tcf is None or tcf.special_feature_opt_in(FEATURE_PRECISE_GEO)
    )
    if tcf is not None:
        ledger.append("p34=" + ("yes" if personalise else "no"))
    return Permissions(
        serve=True,
        personalise=personalise,
        use_ids=personalise and store,
        measure=measure,
        precise_geo=precise_geo,
        reason=restricted or ("contextual_only" if not personalise else ""),
        ledger=tuple(ledger),
        _tcf=tcf,
        _restricted=bool(restricted),
        _tc_key=(signals.tc_string or f"{signals.gpp}|{signals.gpp_sid}") if tcf else "",
    )
