"""What the controller and the reconciliation read from and write to Redis.

The counters are the ones serving charges (`serving.spend`): per campaign a hash per local
day and a lifetime hash, amounts in billionths ("nanos") of the campaign currency.
"""

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from redis import Redis

from serving.keys import RedisKeys
from serving.spend import DAY_TTL_SECONDS, NANOS

# Rewrite the caps of a campaign's day and settle its exhausted marks (and its line items')
# against the budgets as they are now, in one step: a budget raised mid-day resumes
# delivery, a cap lowered stops it, and a charge landing meanwhile cannot be lost.
# KEYS: day hash, lifetime hash, exhausted set.
# ARGV: campaign, cap, icap, kcap ('-': leave as is, '': none), campaign daily budget,
#       campaign lifetime budget, ttl, then (line item, daily, lifetime) triples.
SETTLE = """
local function num(x) return tonumber(x) or 0 end
local names = {'cap', 'icap', 'kcap'}
for n = 1, 3 do
  local v = ARGV[1 + n]
  if v == '' then
    redis.call('HDEL', KEYS[1], names[n])
  elseif v ~= '-' then
    redis.call('HSET', KEYS[1], names[n], v)
  end
end
local ttl = tonumber(ARGV[7])
redis.call('EXPIRE', KEYS[1], ttl)
local d = redis.call('HMGET', KEYS[1], 's', 'i', 'k', 'cap', 'icap', 'kcap')
local s, i, k = num(d[1]), num(d[2]), num(d[3])
local function reached(have, cap) return cap and have >= tonumber(cap) end
local L = num(redis.call('HGET', KEYS[2], 's'))
local cdb, clb = num(ARGV[5]), num(ARGV[6])
local spent = (cdb > 0 and s >= cdb) or (clb > 0 and L >= clb) or reached(s, d[4])
  or reached(i, d[5]) or reached(k, d[6])
if spent then
  redis.call('SADD', KEYS[3], ARGV[1])
else
  redis.call('SREM', KEYS[3], ARGV[1])
end
local out = {spent and 1 or 0}
for j = 8, #ARGV, 3 do
  local li = ARGV[j]
  local ldb, llb = num(ARGV[j + 1]), num(ARGV[j + 2])
  local sl = num(redis.call('HGET', KEYS[1], 's:' .. li))
  local Ll = num(redis.call('HGET', KEYS[2], 's:' .. li))
  if (ldb > 0 and sl >= ldb) or (llb > 0 and Ll >= llb) then
    redis.call('SADD', KEYS[3], 'li:' .. li)
    table.insert(out, tonumber(li))
  else
    redis.call('SREM', KEYS[3], 'li:' .. li)
  end
end
redis.call('EXPIRE', KEYS[3], ttl)
return out
"""

# Release one pending (won, never rendered) charge: it leaves the day's and the lifetime
# counters. Atomic against the impression that might clear it at the same moment.
# KEYS: day hash, lifetime hash. ARGV: pending field, line item.
RELEASE = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local amount = tonumber(raw)
redis.call('HDEL', KEYS[1], ARGV[1])
if not amount or amount <= 0 then
  return 0
end
local a = '-' .. raw
redis.call('HINCRBY', KEYS[1], 's', a)
redis.call('HINCRBY', KEYS[1], 's:' .. ARGV[2], a)
redis.call('HINCRBY', KEYS[2], 's', a)
redis.call('HINCRBY', KEYS[2], 's:' .. ARGV[2], a)
return amount
"""


@dataclass
class Counters:
    """A campaign's day or lifetime hash, parsed."""

    spend: int = 0
    impressions: int = 0
    clicks: int = 0
    line_spend: dict[int, int] = field(default_factory=dict)
    line_impressions: dict[int, int] = field(default_factory=dict)
    line_clicks: dict[int, int] = field(default_factory=dict)
    # (line item, wall-clock minute of the win) → won, not yet rendered
    pending: dict[tuple[int, int], int] = field(default_factory=dict)
    caps: dict[str, int] = field(default_factory=dict)
    reconciled_at: float | None = None
    exhausted_at: float | None = None  # when the controller first saw the campaign spent

    @property
    def pending_total(self) -> int:
        return sum(self.pending.values())

    def line_pending(self, line_item_id: int) -> int:
        return sum(v for (li, _), v in self.pending.items() if li == line_item_id)


def parse_counters(raw: Mapping[Any, Any]) -> Counters:
    out = Counters()
    per = {"s": out.line_spend, "i": out.line_impressions, "k": out.line_clicks}
    for key, value in raw.items():
        name = key.decode() if isinstance(key, bytes) else str(key)
        text = value.decode() if isinstance(value, bytes) else str(value)
        if name == "s":
            out.spend = int(text)
        elif name == "i":
            out.impressions = int(text)
        elif name == "k":
            out.clicks = int(text)
        elif name == "r":
            out.reconciled_at = float(text)
        elif name == "x":
            out.exhausted_at = float(text)
        elif name in ("cap", "icap", "kcap"):
            out.caps[name] = int(text)
        elif name.startswith("p:"):
            _, li, minute = name.split(":")
            out.pending[(int(li), int(minute))] = int(text)
        else:
            kind, _, li = name.partition(":")
            if kind in per and li.isdigit():
                per[kind][int(li)] = int(text)
    return out


def to_nanos(amount: Decimal | None) -> int:
    return int(amount * NANOS) if amount is not None else 0


def to_money(value: float | int) -> Decimal:
    """Billionths back to the currency, kept to the nano."""
    return (Decimal(int(value)) / NANOS).quantize(Decimal("0.000000001"))


class Ledger:
    """The counters of many campaigns, read in one round trip."""

    def __init__(self, client: Redis, keys: RedisKeys) -> None:
        self.client = client
        self.keys = keys
        self._settle = client.register_script(SETTLE)
        self._release = client.register_script(RELEASE)

    def read(self, wanted: Iterable[tuple[int, str]]) -> dict[tuple[int, str], Counters]:
        """Counters by (campaign, day); day "life" for the lifetime hash."""
        wanted = list(dict.fromkeys(wanted))
        pipe = self.client.pipeline(transaction=False)
        for campaign_id, day in wanted:
            key = (
                self.keys.lifetime_spend(campaign_id)
                if day == "life"
                else self.keys.spend(day, campaign_id)
            )
            pipe.hgetall(key)
        return {w: parse_counters(raw) for w, raw in zip(wanted, pipe.execute(), strict=True)}

    def settle(
        self,
        campaign_id: int,
        day: str,
        *,
        caps: tuple[str, str, str] = ("-", "-", "-"),
        budgets: tuple[int, int],
        line_items: Iterable[tuple[int, int, int]],
        pipe: Any = None,
    ) -> Any:
        args: list[Any] = [campaign_id, *caps, *budgets, DAY_TTL_SECONDS]
        for li, daily, lifetime in line_items:
            args += [li, daily, lifetime]
        keys = [
            self.keys.spend(day, campaign_id),
            self.keys.lifetime_spend(campaign_id),
            self.keys.exhausted(day),
        ]
        return self._settle(keys=keys, args=args, client=pipe or self.client)

    def release(self, campaign_id: int, day: str, line_item_id: int, minute: int) -> int:
        keys = [self.keys.spend(day, campaign_id), self.keys.lifetime_spend(campaign_id)]
        return int(self._release(keys=keys, args=[f"p:{line_item_id}:{minute}", line_item_id]))

    def add(self, campaign_id: int, day: str, field_name: str, amount: int) -> None:
        """Raise a counter (the reconciliation's repair); day "life" for the lifetime hash."""
        key = (
            self.keys.lifetime_spend(campaign_id)
            if day == "life"
            else self.keys.spend(day, campaign_id)
        )
        pipe = self.client.pipeline(transaction=False)
        pipe.hincrby(key, field_name, amount)
        if day != "life":
            pipe.expire(key, DAY_TTL_SECONDS)
        pipe.execute()

    def mark_reconciled(self, campaign_id: int, day: str, at: float) -> None:
        key = self.keys.spend(day, campaign_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(key, "r", repr(at))
        pipe.expire(key, DAY_TTL_SECONDS)
        pipe.execute()

    def mark_exhausted(self, marks: Iterable[tuple[int, str, float | None]]) -> None:
        """Record when each (campaign, day) ran out of budget, or forget it (None: a raised
        budget resumed it), in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for campaign_id, day, at in marks:
            key = self.keys.spend(day, campaign_id)
            if at is None:
                pipe.hdel(key, "x")
            else:
                pipe.hsetnx(key, "x", repr(at))
        if len(pipe):
            pipe.execute()

    def record_reconciliation(
        self, drift: Mapping[int, int], repaired: Mapping[str, int], at: float
    ) -> None:
        """The reconciliation's figures for `/metrics` (`RedisKeys.reconcile_metrics`)."""
        key = self.keys.reconcile_metrics
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(key, mapping={"at": repr(at), **{f"d:{c}": n for c, n in drift.items()}})
        for currency, nanos in repaired.items():
            if nanos:
                pipe.hincrby(key, f"r:{currency}", nanos)
        pipe.execute()

    def read_states(self, names: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """The controller's states: all of them, or the named ones (`c12`, `v12`...)."""
        if names is None:
            raw: Any = self.client.hgetall(self.keys.pacing_state)
            return {k.decode(): json.loads(v) for k, v in raw.items()}
        values: Any = self.client.hmget(self.keys.pacing_state, names)
        return {n: json.loads(v) for n, v in zip(names, values, strict=True) if v is not None}

    def exhausted(self, day: str) -> set[str]:
        """Members of a day's exhausted set: campaign ids and `li:{id}`."""
        raw: Any = self.client.smembers(self.keys.exhausted(day))
        return {m.decode() for m in raw}

    def write(
        self,
        *,
        states: Mapping[str, Any],
        rates: Mapping[int, float],
        multipliers: Mapping[int, float],
    ) -> None:
        """Replace the controller's states, rates and bid multipliers in one transaction."""
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(self.keys.pacing_state, self.keys.pacing_rates, self.keys.bid_multipliers)
        if states:
            pipe.hset(
                self.keys.pacing_state,
                mapping={k: json.dumps(v, separators=(",", ":")) for k, v in states.items()},
            )
        if rates:
            pipe.hset(self.keys.pacing_rates, mapping={k: f"{v:.6f}" for k, v in rates.items()})
        if multipliers:
            pipe.hset(
                self.keys.bid_multipliers, mapping={k: f"{v:.4f}" for k, v in multipliers.items()}
            )
        pipe.execute()

    def read_rates(
        self, line_item_ids: list[int] | None = None
    ) -> tuple[dict[int, float], dict[int, float]]:
        """(pass-through rates, bid multipliers): all, or the given line items' that are set."""
        pipe = self.client.pipeline(transaction=False)
        if line_item_ids is None:
            pipe.hgetall(self.keys.pacing_rates)
            pipe.hgetall(self.keys.bid_multipliers)
            rates, multipliers = pipe.execute()
            return (
                {int(k): float(v) for k, v in rates.items()},
                {int(k): float(v) for k, v in multipliers.items()},
            )
        if not line_item_ids:
            return {}, {}
        pipe.hmget(self.keys.pacing_rates, line_item_ids)
        pipe.hmget(self.keys.bid_multipliers, line_item_ids)
        rate_values, multiplier_values = pipe.execute()
        return (
            {li: float(v) for li, v in zip(line_item_ids, rate_values, strict=True) if v},
            {li: float(v) for li, v in zip(line_item_ids, multiplier_values, strict=True) if v},
        )
