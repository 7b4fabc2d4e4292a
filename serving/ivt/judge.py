"""What an impression or click is judged at event time, and the rules behind it.

General invalid traffic is decided in process from what the event's request shows: a
listed crawler's user agent, an address in a data-center range, a pre-fetch or link
scanner's click (HEAD, `Purpose`/`Sec-Purpose: prefetch`). Behavioural rules need counts,
so they are judged in Redis, in the Lua call that records the event (`serving.spend`), in
the batch every event already rides with: per pseudonymous id and per truncated address
(IPv4 /24, IPv6 /56; never a raw id or a full address), impressions and clicks per minute
and per hour, each counter a key that expires with its window; a click sooner than
`min_click_ms` after its impression, or with no impression at all. The first rule that
fires is the event's reason (`Event.iv`): it is recorded, and never billed.

An impression fired from another network than its decision's is flagged (`Event.fl`), not
refused: phones move between Wi-Fi and mobile data.

The thresholds are ad ops' to edit (admin, `reporting.ivt.models.IvtThresholds`); the
saved values are published to Redis, and each serving process reads them with the
data-center list every `REFRESH_SECONDS`, off the request path.
"""

import logging
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from serving.ivt.networks import NetworkList
from serving.keys import RedisKeys

log = logging.getLogger(__name__)

REFRESH_SECONDS = 30.0
MINUTE, HOUR = 60, 3600

# Reasons, as events and reports carry them.
CRAWLER = "crawler"
DATACENTER = "datacenter"
PREFETCH = "prefetch"
FAST_CLICK = "fast_click"
CLICK_WITHOUT_IMPRESSION = "click_without_impression"
ID_RATE = "id_rate"  # a pseudonymous id over its impressions or clicks per minute or hour
IP_RATE = "ip_rate"  # a truncated address over its impressions or clicks per minute or hour
NETWORK_CHANGED = "network_changed"  # a flag: the impression's /24 is not the decision's
PIXEL_STUFFING = "pixel_stuffing"  # measured in a box too small to be seen (after the fact)
REASONS = (
    CRAWLER, DATACENTER, PREFETCH, FAST_CLICK, CLICK_WITHOUT_IMPRESSION, ID_RATE, IP_RATE,
    PIXEL_STUFFING,
)  # fmt: skip

# User agents of link scanners (mail and chat previews, security gateways) that follow
# links: their clicks are never counted. Lower case, substrings.
SCANNER_TOKENS = (
    "slackbot-linkexpanding", "facebookexternalhit", "twitterbot", "whatsapp", "skypeuripreview",
    "microsoft office", "ms-office", "safelinks", "barracuda", "mimecast", "proofpoint",
    "google-safety", "linkpreview", "discordbot", "telegrambot", "bitlybot",
)  # fmt: skip

DatacenterAction = Literal["no_ad", "house"]


@dataclass(frozen=True, slots=True)
class IvtRules:
    """The thresholds in force (0 turns a rule off)."""

    enabled: bool = True
    # A decision from a data-center address: no ad at all, or house line items only.
    datacenter_action: DatacenterAction = "no_ad"
    min_click_ms: int = 1000
    id_imps_per_minute: int = 30
    id_imps_per_hour: int = 600
    # People click few ads: four in a minute, or more than twenty in an hour, from one id is
    # a script or a farm (the first limits were 5 and 30: a farm's first clicks passed).
    id_clicks_per_minute: int = 3
    id_clicks_per_hour: int = 20
    # A pseudonym over any of its limits stays invalid this long (0: only while over), so a
    # farm is not billed again each time a minute's counter starts from zero. Never an
    # address: a /24 is shared, and its other users count again once it is under its limits.
    id_hold_seconds: int = 3600
    # Pixel stuffing (`serving.ivt.stuffing`): a measured ad box narrower or shorter than
    # this (CSS pixels, clipped to its frame) was never shown; the smallest IAB unit is 88x31.
    min_render_px: int = 10
    # A /24 is shared (offices, mobile carriers' NAT): its limits are far higher.
    ip_imps_per_minute: int = 600
    ip_imps_per_hour: int = 12_000
    ip_clicks_per_minute: int = 60
    ip_clicks_per_hour: int = 600

    @classmethod
    def from_settings(cls) -> "IvtRules":
        from django.conf import settings

        return cls.from_mapping(settings.IVT_RULES)

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> "IvtRules":
        """The rules given by name; unknown names are a ValueError (a typo is not ignored)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown IVT rule settings: {', '.join(unknown)}")
        rules = replace(cls(), **values)
        if rules.datacenter_action not in ("no_ad", "house"):
            raise ValueError("datacenter_action must be 'no_ad' or 'house'")
        return rules

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def counters(self, kind: str) -> tuple[tuple[str, int, int, str], ...]:
        """(subject, window seconds, limit, reason) of the rate rules for "imp" or "clk"."""
        if kind == "imp":
            limits = (
                ("u", MINUTE, self.id_imps_per_minute, ID_RATE),
                ("u", HOUR, self.id_imps_per_hour, ID_RATE),
                ("n", MINUTE, self.ip_imps_per_minute, IP_RATE),
                ("n", HOUR, self.ip_imps_per_hour, IP_RATE),
            )
        else:
            limits = (
                ("u", MINUTE, self.id_clicks_per_minute, ID_RATE),
                ("u", HOUR, self.id_clicks_per_hour, ID_RATE),
                ("n", MINUTE, self.ip_clicks_per_minute, IP_RATE),
                ("n", HOUR, self.ip_clicks_per_hour, IP_RATE),
            )
        return tuple(c for c in limits if c[2] > 0)


def is_prefetch(method: str, purpose: str | None, sec_purpose: str | None) -> bool:
    """A request the browser or a proxy made ahead of any user action."""
    if method == "HEAD":
        return True
    return any(p and "prefetch" in p.lower() for p in (purpose, sec_purpose))


def is_link_scanner(ua_lower: str) -> bool:
    for token in SCANNER_TOKENS:  # noqa: SIM110 - a loop: half the cost of any(generator)
        if token in ua_lower:
            return True
    return False


@dataclass(frozen=True, slots=True)
class Judgement:
    """What the recording Lua call needs to judge one event (`serving.spend`)."""

    reason: str = ""  # already judged in process ("" for none)
    now_ms: int = 0
    min_click_ms: int = 0  # 0: the click-timing rules are off
    impression_key: str = ""  # a click's: its decision's impression mark
    hold_key: str = ""  # the pseudonym's hold (`IvtRules.id_hold_seconds`); "" for none
    hold_seconds: int = 0
    counter_keys: tuple[str, ...] = ()
    # Per counter: expiry, limit, reason, and "1" when passing it holds the pseudonym.
    counter_args: tuple[int | str, ...] = ()


NOT_JUDGED = Judgement()


def judgement(
    rules: IvtRules,
    keys: RedisKeys,
    kind: str,
    decision_id: str,
    *,
    reason: str,
    user: str,
    network: str,
    now: float,
    campaign_id: int = 0,
) -> Judgement:
    """The counters an impression or click adds to and the limits they are held to."""
    if not rules.enabled:
        return NOT_JUDGED
    counter_keys: list[str] = []
    counter_args: list[int | str] = []
    for subject, window, limit, name in rules.counters(kind):
        value = user if subject == "u" else network
        if value:
            bucket = int(now) // window
            counter_keys.append(
                keys.ivt_count(subject, value, kind, window, bucket, campaign_id, decision_id)
            )
            # Kept a minute past its window, for clock skew between processes.
            counter_args += [window + MINUTE, limit, name, "1" if subject == "u" else "0"]
    hold = rules.id_hold_seconds if user else 0
    return Judgement(
        reason=reason,
        now_ms=int(now * 1000),
        min_click_ms=rules.min_click_ms if kind == "clk" else 0,
        impression_key=keys.seen("imp", decision_id, campaign_id) if kind == "clk" else "",
        hold_key=keys.ivt_hold(user, campaign_id, decision_id) if hold else "",
        hold_seconds=hold,
        counter_keys=tuple(counter_keys),
        counter_args=tuple(counter_args),
    )


@dataclass(slots=True)
class IvtState:
    """One serving process's current rules and data-center list."""

    rules: IvtRules
    datacenter: NetworkList

    @classmethod
    def from_file(cls, rules: IvtRules, path: str | None) -> "IvtState":
        """The configured list at start; a bad file stops the process (said clearly)."""
        if not path:
            return cls(rules, NetworkList())
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
            return cls(rules, NetworkList.parse(text, version="file"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"IVT_DATACENTER_FILE {path!r} cannot be used: {exc}") from exc

    def apply(self, rules: dict[str, Any] | None, version: str, text: str | None) -> None:
        """Adopt what Redis holds; a bad value there is logged and the current one kept."""
        if rules is not None:
            try:
                self.rules = IvtRules.from_mapping(rules)
            except (TypeError, ValueError):
                log.warning("published IVT rules ignored: %r", rules)
        if text is not None and version and version != self.datacenter.version:
            try:
                self.datacenter = NetworkList.parse(text, version)
            except ValueError as exc:
                log.warning("published data-center list %s ignored: %s", version, exc)
