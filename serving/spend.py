"""Real-time spend: charged at the win, kept in Redis per campaign and line item, per day
(in the campaign's time zone) and lifetime, with budgets that stop delivery within a flush.

- A CPM win is charged when it is decided (clearing CPM / 1000), in the same batched
  pipeline as the request's events (`EventSink.script`): one Lua call adds it to the day and
  lifetime counters of the campaign and the line item, counts the impression won, remembers
  it as pending until its impression arrives, and, when a budget or a cap is reached, adds
  the campaign (or the line item) to the day's exhausted set. Its reply tells this process at
  once, so it stops before the next request; every other process stops at its own next
  charge of that campaign or at its next read of the exhausted sets, within a second.
- The impression is de-duplicated and recorded for reporting (the rollups bill rendered
  impressions: the truth) and clears the pending mark; a win whose impression never comes
  is released by the reconciliation after the token lifetime (`campaigns.pacing.reconcile`).
- A CPC click is charged when it is recorded (de-duplicated, like today).

Amounts are integer billionths of the campaign currency ("nanos": CPM micros per impression).
"""

import asyncio
import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis

from serving import clock
from serving.events import Event, EventSink, encode_events
from serving.ivt.judge import NOT_JUDGED, Judgement
from serving.keys import RedisKeys, local_day
from serving.snapshot import CampaignSnap, LineItemSnap
from serving.wire import Lua

if TYPE_CHECKING:
    from serving.store import SnapshotStore

log = logging.getLogger(__name__)

NANOS = Decimal(1_000_000_000)
# Day counters outlive their day by this much: the reconciliation and yesterday's figures.
DAY_TTL_SECONDS = 2 * 86400
# Campaign marked exhausted: bit 1 of a charge's flags; line item: bit 2; a reservation
# refused (it would have passed a budget; nothing charged): bit 3.
CAMPAIGN_SPENT, LINE_ITEM_SPENT, REFUSED = 1, 2, 4
# What a process may charge without waiting for the reply, at most, as a share of the
# remaining budget it last saw: past it, a win waits for its charge (a reservation, refused
# rather than overspent). Each process's unconfirmed charges then stay under this share of
# the budget, so N processes overspend by N/1000 of it at most, however tiny the budget or
# fast the traffic; far from exhaustion (a remaining budget over 1,000 wins) nothing waits.
UNCONFIRMED_SHARE = 0.001
# Running counts kept per process before they are all forgotten (a new day's are rebuilt
# from the next replies).
RUNNING_LIMIT = 100_000

# The charge, shared by both scripts. kd: the campaign's day hash, kl: its lifetime hash,
# kx: the day's exhausted set. Budgets and caps of 0 mean none.
_CHARGE_FN = """
local function charge(kd, kl, kx, li, cp, cost, imps, clicks, pend, cdb, clb, ldb, llb, ttl,
                      reserve)
  if reserve then
    -- a reservation: charged only if it passes no budget and no spend cap
    local c = tonumber(cost)
    local day = redis.call('HMGET', kd, 's', 's:' .. li, 'cap')
    local life = redis.call('HMGET', kl, 's', 's:' .. li)
    local s0 = tonumber(day[1]) or 0
    local function over(have, limit) return limit > 0 and (tonumber(have) or 0) + c > limit end
    local refused = 0
    if over(day[1], cdb) or over(life[1], clb)
        or (day[3] and s0 + c > tonumber(day[3])) then
      redis.call('SADD', kx, cp)
      refused = 1
    end
    if over(day[2], ldb) or over(life[2], llb) then
      redis.call('SADD', kx, 'li:' .. li)
      refused = refused + 2
    end
    if refused > 0 then
      redis.call('EXPIRE', kx, ttl)
      local limit = cdb
      if day[3] and (limit == 0 or tonumber(day[3]) < limit) then limit = tonumber(day[3]) end
      return {s0, refused + 4, limit}
    end
  end
  -- cost stays a string for HINCRBY: Lua would print a large number in exponent form
  local s = tonumber(redis.call('HINCRBY', kd, 's', cost))
  local sl = tonumber(redis.call('HINCRBY', kd, 's:' .. li, cost))
  local L = tonumber(redis.call('HINCRBY', kl, 's', cost))
  local Ll = tonumber(redis.call('HINCRBY', kl, 's:' .. li, cost))
  if imps > 0 then
    redis.call('HINCRBY', kd, 'i', imps)
    redis.call('HINCRBY', kd, 'i:' .. li, imps)
    redis.call('HINCRBY', kl, 'i', imps)
    redis.call('HINCRBY', kl, 'i:' .. li, imps)
  end
  if clicks > 0 then
    redis.call('HINCRBY', kd, 'k', clicks)
    redis.call('HINCRBY', kd, 'k:' .. li, clicks)
    redis.call('HINCRBY', kl, 'k', clicks)
    redis.call('HINCRBY', kl, 'k:' .. li, clicks)
  end
  if pend ~= '' and tonumber(cost) > 0 then
    redis.call('HINCRBY', kd, pend, cost)
  end
  redis.call('EXPIRE', kd, ttl)
  -- the day's caps from the controller (a missing one: none; 0: nothing more today)
  local caps = redis.call('HMGET', kd, 'cap', 'icap', 'kcap', 'i', 'k')
  local i, k = tonumber(caps[4]) or 0, tonumber(caps[5]) or 0
  local function reached(have, cap) return cap and have >= tonumber(cap) end
  local flags = 0
  if (cdb > 0 and s >= cdb) or (clb > 0 and L >= clb) or reached(s, caps[1])
      or reached(i, caps[2]) or reached(k, caps[3]) then
    redis.call('SADD', kx, cp)
    flags = 1
  end
  if (ldb > 0 and sl >= ldb) or (llb > 0 and Ll >= llb) then
    redis.call('SADD', kx, 'li:' .. li)
    flags = flags + 2
  end
  if flags > 0 then
    redis.call('EXPIRE', kx, ttl)
  end
  -- the tightest limit on the day's spend, for the process's own running count
  local limit = cdb
  if caps[1] and (limit == 0 or tonumber(caps[1]) < limit) then
    limit = tonumber(caps[1])
  end
  return {s, flags, limit}
end
"""

# A win. KEYS: day hash, lifetime hash, exhausted set.
# ARGV: line item, campaign, cost, impressions, clicks, pending field ('' for none),
#       campaign daily budget, campaign lifetime budget, line item daily, line item lifetime,
#       ttl, reservation ('1': refuse rather than pass a budget)
CHARGE = (
    _CHARGE_FN
    + """
return charge(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3],
  tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8]),
  tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11]), ARGV[12] == '1')
"""
)

# An impression or a click, once per decision, judged by the behavioural rules
# (`serving.ivt.judge`). KEYS: dedupe key, stream, day hash, lifetime hash, exhausted set,
# the decision's impression mark (a click's; its own dedupe key for an impression), the
# pseudonym's hold and the held pseudonyms awaiting their refund (a sorted set; the dedupe
# key again when there is no hold), then one counter key per rate rule. ARGV: dedupe ttl,
# encoded events (`"iv":""` in them is where a reason goes), line item, campaign, cost to
# charge, clicks, pending field to clear ('' for none), pending amount, the four budgets and
# the ttl as for CHARGE, then the reason judged in process ('' for none), now (epoch ms), the
# shortest click delay (ms; 0: off), how long a pseudonym over a limit stays invalid (s; 0: no
# hold), the pseudonym, and per counter its window (s), its limit, the reason it gives and
# whether passing it holds the pseudonym ('1'). Returns 0 for a repeat, {1, spend, flags}
# when billed, {2, 0, 0, reason} when judged invalid (recorded, not billed).
RECORD_BILLABLE = (
    _CHARGE_FN
    + """
if not redis.call('SET', KEYS[1], ARGV[15], 'NX', 'EX', tonumber(ARGV[1])) then
  return 0
end
local reason = ARGV[14]
local hold = tonumber(ARGV[17])
if reason == '' and hold > 0 then
  reason = redis.call('GET', KEYS[7]) or ''
end
for n = 9, #KEYS do
  local a = 19 + (n - 9) * 4
  local count = redis.call('INCR', KEYS[n])
  if count == 1 then
    redis.call('EXPIRE', KEYS[n], ARGV[a])
  end
  if count > tonumber(ARGV[a + 1]) then
    if reason == '' then
      reason = ARGV[a + 2]
    end
    if hold > 0 and ARGV[a + 3] == '1' then
      if redis.call('SET', KEYS[7], ARGV[a + 2], 'NX', 'EX', hold) then
        -- newly held: what it was billed before, in the window, is to be refunded
        redis.call('ZADD', KEYS[8], 'NX', ARGV[15], ARGV[18])
      else
        redis.call('EXPIRE', KEYS[7], hold)
      end
    end
  end
end
local clicks = tonumber(ARGV[6])
if clicks > 0 and reason == '' and ARGV[16] ~= '0' then
  local shown = redis.call('GET', KEYS[6])
  if not shown then
    reason = 'click_without_impression'
  elseif tonumber(ARGV[15]) - tonumber(string.match(shown, '%d+')) < tonumber(ARGV[16]) then
    reason = 'fast_click'
  end
end
if reason ~= '' then
  -- Marked invalid ("i"), so that a later judgement (pixel stuffing) does not take it back.
  redis.call('SET', KEYS[1], ARGV[15] .. 'i', 'KEEPTTL')
  local ev = string.gsub(ARGV[2], '"iv":""', '"iv":"' .. reason .. '"', 1)
  redis.call('XADD', KEYS[2], '*', 'v', ev)
  -- Not billed: the win's charge (still pending) leaves the counters, as a release does.
  if ARGV[7] ~= '' then
    local have = tonumber(redis.call('HGET', KEYS[3], ARGV[7]))
    if have and have >= tonumber(ARGV[8]) then
      local a = '-' .. ARGV[8]
      if tonumber(redis.call('HINCRBY', KEYS[3], ARGV[7], a)) <= 0 then
        redis.call('HDEL', KEYS[3], ARGV[7])
      end
      for _, k in ipairs({KEYS[3], KEYS[4]}) do
        redis.call('HINCRBY', k, 's', a)
        redis.call('HINCRBY', k, 's:' .. ARGV[3], a)
        redis.call('HINCRBY', k, 'i', -1)
        redis.call('HINCRBY', k, 'i:' .. ARGV[3], -1)
      end
    end
  end
  return {2, 0, 0, reason}
end
-- Never trimmed here: ingestion may not have read what a MAXLEN would drop (reporting.backlog).
redis.call('XADD', KEYS[2], '*', 'v', ARGV[2])
if ARGV[7] ~= '' and redis.call('HEXISTS', KEYS[3], ARGV[7]) == 1 then
  if tonumber(redis.call('HINCRBY', KEYS[3], ARGV[7], '-' .. ARGV[8])) <= 0 then
    redis.call('HDEL', KEYS[3], ARGV[7])
  end
end
if ARGV[4] == '0' or (tonumber(ARGV[5]) == 0 and clicks == 0) then
  return {1, 0, 0}
end
local r = charge(KEYS[3], KEYS[4], KEYS[5], ARGV[3], ARGV[4], ARGV[5], 0, clicks, '',
  tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12]),
  tonumber(ARGV[13]), false)
return {1, r[1], r[2]}
"""
)


def nanos(amount: Decimal | None) -> int:
    """A budget in billionths; 0 for none."""
    return int(amount * NANOS) if amount is not None else 0


def pending_field(line_item_id: int, issued_at: int) -> str:
    """The day-hash field holding a line item's won-but-not-rendered spend of one minute."""
    return f"p:{line_item_id}:{issued_at // 60}"


class SpendRecorder:
    """Charges wins and records billable events for one serving process.

    What a charge's reply says (a budget reached) is applied to the process's own view of
    the exhausted sets at once, through the store.
    """

    def __init__(self, redis: Redis, keys: RedisKeys, store: "SnapshotStore") -> None:
        self.keys = keys
        self.store = store
        self._charge = Lua(CHARGE)
        self._billable = Lua(RECORD_BILLABLE)
        # (campaign, day) -> [the day's spend in the last reply, this process's charges
        # still in flight, the day's tightest spend limit]: a running count that stops this
        # process at the win that reaches the budget, before any reply says so.
        self._running: dict[tuple[int, str], list[int]] = {}

    def _budgets(self, li: LineItemSnap | None, campaign_id: int) -> tuple[int, int, int, int]:
        campaign: CampaignSnap | None = self.store.campaigns.get(campaign_id)
        return (
            nanos(campaign.daily_budget) if campaign else 0,
            nanos(campaign.lifetime_budget) if campaign else 0,
            nanos(li.daily_budget) if li else 0,
            nanos(li.lifetime_budget) if li else 0,
        )

    def _zone(self, li: LineItemSnap | None, campaign_id: int) -> str:
        campaign = self.store.campaigns.get(campaign_id)
        if campaign is not None:
            return campaign.time_zone
        return li.time_zone if li is not None else "UTC"

    def charge_win(
        self, sink: EventSink, li: LineItemSnap, cost: int, issued_at: int
    ) -> "asyncio.Future[bool] | None":
        """Charge a won impression (cost in nanos; 0 for CPC) with the next batch.

        None when nothing waits for it; near the budget (`UNCONFIRMED_SHARE`) a future that
        says whether the charge went through: the win must be dropped when it did not."""
        c = li.campaign_id
        day = local_day(clock.of_wall(issued_at), self._zone(li, c))
        keys = (self.keys.spend(day, c), self.keys.lifetime_spend(c), self.keys.exhausted(day, c))
        pend = pending_field(li.id, issued_at) if cost > 0 else ""
        budgets = self._budgets(li, c)
        running = self._running.get((c, day))
        if running is None:
            if len(self._running) > RUNNING_LIMIT:
                self._running.clear()  # yesterday's and gone campaigns
            running = self._running[(c, day)] = [0, 0, budgets[0]]
        limit = running[2]
        # The day's tightest limit as the last reply said (the budget until one came back).
        if cost and limit and running[1] + cost > (limit - running[0]) * UNCONFIRMED_SHARE:
            args = (li.id, c, cost, 1, 0, pend, *budgets, DAY_TTL_SECONDS, "1")
            return self._reserve(sink, keys, args, running, day, li.id)
        args = (li.id, c, cost, 1, 0, pend, *budgets, DAY_TTL_SECONDS, "0")
        running[1] += cost
        if limit and running[0] + running[1] >= limit:
            self.store.mark_exhausted(day, campaign_id=c)

        def charged(result: Any) -> None:
            running[1] -= cost
            if not isinstance(result, BaseException):
                running[0] = int(result[0])
                running[2] = int(result[2])
                self._apply_flags(day, c, li.id, int(result[1]))

        sink.script(self._charge, keys, args, charged)
        return None

    def _reserve(
        self,
        sink: EventSink,
        keys: tuple[str, str, str],
        args: tuple[Any, ...],
        running: list[int],
        day: str,
        line_item_id: int,
    ) -> "asyncio.Future[bool]":
        """A charge whose request waits for it (in the same batch as everything else): True
        when charged, False when it would have passed a budget or Redis did not answer."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        c = int(args[1])

        def reserved(result: Any) -> None:
            if isinstance(result, BaseException):
                done.set_result(False)  # not known to be charged: not served
                return
            flags = int(result[1])
            running[0] = int(result[0])
            running[2] = int(result[2])
            self._apply_flags(day, c, line_item_id, flags)
            done.set_result(not flags & REFUSED)

        sink.script(self._charge, keys, args, reserved)
        return done

    async def record_billable(
        self,
        sink: EventSink,
        event: Event,
        *,
        issued_at: int,
        cost: int,
        pending: int,
        dedupe_key: str,
        dedupe_ttl: int,
        judge: Judgement = NOT_JUDGED,
    ) -> str | None:
        """Record an impression or click once per decision: None for a repeat, "" when it
        was billed, else the reason it was judged invalid (recorded, never billed).

        `cost` is charged now (a CPC click); `pending` is what the win charged for this
        impression, cleared from the pending wins (and taken back off the spend when the
        event is invalid)."""
        c, li_id = event.cp, event.li
        index = self.store.index
        li = index.line_items.get(li_id) if index is not None and li_id else None
        day = local_day(clock.of_wall(issued_at), self._zone(li, c))
        # A house decision (no campaign) charges nothing: its counter keys are never touched,
        # and stand in the decision's own slot (a Redis Cluster's: `serving.keys`).
        counters = (
            (self.keys.spend(day, c), self.keys.lifetime_spend(c), self.keys.exhausted(day, c))
            if c
            else (dedupe_key,) * 3
        )
        keys = (
            dedupe_key,
            self.keys.tracking_stream(c, event.d),
            *counters,
            judge.impression_key or dedupe_key,
            judge.hold_key or dedupe_key,
            self.keys.ivt_held_in(c, event.d) if judge.hold_key else dedupe_key,
            *judge.counter_keys,
        )
        clicks = 1 if event.t == "clk" else 0
        pend = pending_field(li_id, issued_at) if pending > 0 and c else ""
        args = (
            dedupe_ttl, encode_events([event]), li_id, c, cost, clicks, pend, pending,
            *self._budgets(li, c), DAY_TTL_SECONDS,
            judge.reason, judge.now_ms, judge.min_click_ms,
            judge.hold_seconds if judge.hold_key else 0, event.u, *judge.counter_args,
        )  # fmt: skip
        result = await sink.run_script(self._billable, keys, args)
        if not result:
            return None
        if int(result[0]) == 2:
            reason = result[3]
            return reason.decode() if isinstance(reason, bytes) else str(reason)
        self._apply_flags(day, c, li_id, int(result[2]))
        return ""

    def counter_keys(self, line_item_id: int, campaign_id: int, issued_at: int) -> tuple[str, str]:
        """(day hash, lifetime hash) a decision's spend was charged to."""
        index = self.store.index
        li = index.line_items.get(line_item_id) if index is not None else None
        day = local_day(clock.of_wall(issued_at), self._zone(li, campaign_id))
        return self.keys.spend(day, campaign_id), self.keys.lifetime_spend(campaign_id)

    def _apply_flags(self, day: str, campaign_id: int, line_item_id: int, flags: int) -> None:
        if flags & CAMPAIGN_SPENT:
            self.store.mark_exhausted(day, campaign_id=campaign_id)
        if flags & LINE_ITEM_SPENT:
            self.store.mark_exhausted(day, line_item_id=line_item_id)


def parse_exhausted(
    members: Mapping[str, set[bytes]],
    zones: Mapping[int, str],
    line_item_zones: Mapping[int, str],
    day_of_zone: Mapping[str, str],
) -> tuple[frozenset[int], frozenset[int]]:
    """(campaigns, line items) out of budget on their own local day, from the day sets."""
    campaigns: set[int] = set()
    line_items: set[int] = set()
    for day, raw in members.items():
        for member in raw:
            text = member.decode() if isinstance(member, bytes) else str(member)
            if text.startswith("li:"):
                li = int(text[3:])
                if day_of_zone.get(line_item_zones.get(li, "UTC")) == day:
                    line_items.add(li)
            elif text.isdigit():
                c = int(text)
                if day_of_zone.get(zones.get(c, "UTC")) == day:
                    campaigns.add(c)
    return frozenset(campaigns), frozenset(line_items)
