"""Swapping snapshot versions: a patched index equals a full compile of the same version.

A synthetic book gets many random edits (bids, pauses, new line items, creative and
targeting changes, header changes); each version is published as content-addressed parts
and loaded by a `SnapshotStore` that patches its index. After every swap the patched index
must give exactly what compiling that version from scratch gives: the same lists in the
same order, the same tables and the same cached merges.
"""

import asyncio
import logging
import random
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from django.conf import settings
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from campaigns.snapshot import write_snapshot
from serving import engine
from serving import snapshot as snapshot_module
from serving.index import Index, compile_index
from serving.keys import RedisKeys
from serving.snapshot import (
    CampaignSnap,
    CreativeSnap,
    LineItemSnap,
    PlacementSnap,
    Snapshot,
    encode_snapshot,
    group_by_id,
)
from serving.store import SnapshotStore

D = Decimal
SIZES = ["300x250", "728x90", "320x50"]
COUNTRIES = ["US", "DE", "GB", "FR"]
DEVICES = [1, 2, 4, 5]
CHANNELS = ["web", "app", "ctv"]
FORMATS = ["banner", "banner", "banner", "video", "native"]


def _creative(rng: random.Random, cid: int) -> CreativeSnap:
    fmt = rng.choice(FORMATS)
    return CreativeSnap(
        id=cid,
        size=rng.choice(SIZES) if fmt == "banner" else "0x0",
        markup=f"<a>{rng.random()}</a>",
        click_url="https://x.test",
        format=fmt,
    )


def _subset(rng: random.Random, values: list[Any]) -> list[Any]:
    return rng.sample(values, rng.randint(0, 2)) if rng.random() < 0.6 else []


def _line_item(rng: random.Random, lid: int, creatives: list[CreativeSnap]) -> LineItemSnap:
    shown = rng.sample(creatives, rng.randint(1, 3))
    cpc = rng.random() < 0.15
    return LineItemSnap(
        id=lid,
        campaign_id=rng.randint(1, 12),
        advertiser_id=1,
        # Few distinct bids: ties in eCPM are common, ordered by id.
        bid=D(rng.choice(["0.50", "1.00", "1.50", "2.25", "3.00"])),
        sizes=sorted({c.size for c in shown if c.format == "banner"} | {rng.choice(SIZES)}),
        start=0.0,
        end=None,
        creative_ids=sorted(c.id for c in shown),
        creative_weights=[rng.randint(1, 3) for _ in shown],
        placement_ids=_subset(rng, [1, 2, 3]),
        tier=rng.choice([0, 1, 2, 2, 2, 3]),
        bid_type="cpc" if cpc else "cpm",
        predicted_ctr=0.01 if cpc else 0.0,
        countries=_subset(rng, COUNTRIES),
        regions=["US-CA"] if rng.random() < 0.05 else [],
        device_types=_subset(rng, DEVICES),
        channels=_subset(rng, CHANNELS),
        keywords=["news"] if rng.random() < 0.1 else [],
        frequency_caps=[(3, "day")] if rng.random() < 0.05 else [],
        child_safe=rng.random() < 0.5,
    )


def _book(rng: random.Random, n_items: int) -> Snapshot:
    creatives = [_creative(rng, cid) for cid in range(1, n_items + n_items // 4)]
    return Snapshot(
        version=1,
        built_at="t",
        placements=[
            PlacementSnap(id=p, publisher_id=1, key=f"k{p}", sizes=SIZES, floor_cpm=D("0.1"))
            for p in (1, 2, 3)
        ],
        campaigns=[CampaignSnap(id=c, daily_budget=D(100)) for c in range(1, 13)],
        creatives=creatives,
        line_items=[_line_item(rng, lid, creatives) for lid in range(1, n_items + 1)],
    )


def _edit(rng: random.Random, snap: Snapshot) -> Snapshot:
    """One random edit of the kind the dashboard makes."""
    items = list(snap.line_items)
    creatives = list(snap.creatives)
    n = rng.randrange(len(items))
    kind = rng.choice(
        [
            "bid",
            "bid",
            "remove",
            "add",
            "add_middle",
            "creative",
            "creative_size",
            "targeting",
            "tier",
            "assign",
            "header",
            "drop_creative",
        ]
    )
    li = items[n]
    if kind == "bid":
        items[n] = msgspec.structs.replace(li, bid=li.bid + D("0.01"))
    elif kind == "remove":
        del items[n]
    elif kind == "add":
        new_id = max(i.id for i in items) + 1
        items.append(_line_item(rng, new_id, creatives))
    elif kind == "add_middle":  # an id below the highest: a line item resumed after a pause
        taken = {i.id for i in items}
        free = [i for i in range(1, max(taken)) if i not in taken]
        if free:
            items.append(_line_item(rng, rng.choice(free), creatives))
    elif kind in ("creative", "creative_size"):
        used = [c for c in creatives if c.id in li.creative_ids] or creatives
        target = rng.choice(used)
        k = creatives.index(target)
        if kind == "creative":
            creatives[k] = msgspec.structs.replace(target, markup=target.markup + "!")
        else:
            creatives[k] = msgspec.structs.replace(target, size=rng.choice(SIZES))
    elif kind == "targeting":
        items[n] = msgspec.structs.replace(
            li,
            countries=_subset(rng, COUNTRIES),
            device_types=_subset(rng, DEVICES),
            channels=_subset(rng, CHANNELS),
            placement_ids=_subset(rng, [1, 2, 3]),
        )
    elif kind == "tier":
        items[n] = msgspec.structs.replace(li, tier=rng.choice([0, 1, 2, 3]))
    elif kind == "assign":
        new = _creative(rng, max(c.id for c in creatives) + 1)
        creatives.append(new)
        items[n] = msgspec.structs.replace(
            li,
            creative_ids=[*li.creative_ids, new.id],
            creative_weights=[*li.creative_weights, 1],
            sizes=sorted({*li.sizes, new.size}) if new.format == "banner" else li.sizes,
        )
    elif kind == "header":
        campaigns = list(snap.campaigns)
        campaigns[0] = msgspec.structs.replace(
            campaigns[0], daily_budget=campaigns[0].daily_budget + 1
        )
        snap = msgspec.structs.replace(snap, campaigns=campaigns)
    elif kind == "drop_creative":  # line items keep naming it; it no longer ships
        del creatives[rng.randrange(len(creatives))]
    return msgspec.structs.replace(snap, line_items=items, creatives=creatives)


def _warm_merges(rng: random.Random, index: Index, n: int = 60) -> None:
    """Fill the index's cache of merged lists as requests would."""
    for _ in range(n):
        slots = rng.sample([*SIZES, "video", "native"], rng.randint(1, 3))
        engine._ordered(
            index,
            rng.choice([1, 2, 3, 9]),
            slots,
            rng.choice([*COUNTRIES, None]),
            rng.choice([*DEVICES, None]),
            rng.choice([*CHANNELS, None]),
        )


def _assert_same(patched: Index, full: Index) -> None:
    assert patched.version == full.version
    assert patched.lists == full.lists
    assert patched.line_items == full.line_items
    assert patched.creatives == full.creatives
    assert (patched.has_caps, patched.capped) == (full.has_caps, full.capped)
    assert patched.placements_by_key == full.placements_by_key
    assert patched.budgets == full.budgets
    assert patched.deals == full.deals
    assert patched.buyers == full.buyers
    assert patched.staff_token_hashes == full.staff_token_hashes
    assert patched.currency == full.currency
    for key, (prefix, rest) in list(patched.merged.items()):
        engine._ordered(full, *key)
        assert (prefix, rest) == full.merged[key], key
    # and lookups the cache did not hold yet
    for key in full.lists:
        placement, slot, country, device, channel = key
        args = (placement or 1, [slot], country or None, device or None, channel or None)
        assert patched.candidate_lists(*args) == full.candidate_lists(*args)


def _publish(client: Redis, keys: RedisKeys, snap: Snapshot) -> None:
    became_current, _ = write_snapshot(client, keys, encode_snapshot(snap))
    assert became_current


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_patched_index_equals_a_full_compile(
    seed: int, redis_client: Redis, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    # Small parts, so a book of a few hundred line items has dozens of them.
    monkeypatch.setattr(snapshot_module, "PART_TARGET", 8)
    monkeypatch.setattr(snapshot_module, "PART_MAX", 24)
    rng = random.Random(seed)
    keys = RedisKeys(settings.REDIS_KEY_PREFIX)
    snap = _book(rng, 300)

    async def swaps() -> None:
        nonlocal snap
        store = SnapshotStore(AsyncRedis.from_url(settings.REDIS_URL), keys)
        _publish(redis_client, keys, snap)
        assert await store.refresh()
        for version in range(2, 62):
            for _ in range(rng.choice([1, 1, 1, 2, 5, 20])):
                snap = _edit(rng, snap)
            snap = msgspec.structs.replace(snap, version=version)
            assert store.index is not None
            _warm_merges(rng, store.index)
            _publish(redis_client, keys, snap)

            assert await store.refresh()

            assert store.index is not None
            _assert_same(store.index, compile_index(snap))
        await store.redis.aclose()

    with caplog.at_level(logging.INFO, logger="serving.store"):
        asyncio.run(swaps())
    patched = sum("(patched" in r.getMessage() for r in caplog.records)
    assert patched >= 40  # most swaps took the incremental path


def test_the_old_index_is_never_modified_by_a_swap(
    redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshot_module, "PART_TARGET", 8)
    rng = random.Random(9)
    keys = RedisKeys(settings.REDIS_KEY_PREFIX)
    snap = _book(rng, 200)

    async def swaps() -> None:
        nonlocal snap
        store = SnapshotStore(AsyncRedis.from_url(settings.REDIS_URL), keys)
        _publish(redis_client, keys, snap)
        await store.refresh()
        for version in range(2, 22):
            old_snap, old_index = snap, store.index
            assert old_index is not None
            _warm_merges(rng, old_index)
            snap = msgspec.structs.replace(_edit(rng, snap), version=version)
            _publish(redis_client, keys, snap)

            await store.refresh()

            _assert_same(old_index, compile_index(old_snap))
        await store.redis.aclose()

    asyncio.run(swaps())


def test_a_creative_change_reaches_every_line_item_showing_it(redis_client: Redis) -> None:
    keys = RedisKeys(settings.REDIS_KEY_PREFIX)
    creative = CreativeSnap(id=1, size="300x250", markup="old", click_url="https://x.test")
    items = [
        LineItemSnap(
            id=i,
            campaign_id=1,
            advertiser_id=1,
            bid=D(i),
            sizes=["300x250"],
            start=0.0,
            end=None,
            creative_ids=[1],
            creative_weights=[1],
        )
        for i in (3, 500, 90_000)  # far apart: in different parts
    ]
    snap = Snapshot(
        version=1, built_at="t", placements=[], campaigns=[], creatives=[creative],
        line_items=items,
    )  # fmt: skip

    async def swap() -> Index:
        store = SnapshotStore(AsyncRedis.from_url(settings.REDIS_URL), keys)
        _publish(redis_client, keys, snap)
        await store.refresh()
        changed = msgspec.structs.replace(creative, markup="new")
        _publish(redis_client, keys, msgspec.structs.replace(snap, version=2, creatives=[changed]))
        await store.refresh()
        await store.redis.aclose()
        assert store.index is not None
        return store.index

    index = asyncio.run(swap())

    [candidates] = index.lists.values()
    assert [c.creatives[0].markup for c in candidates] == ["new", "new", "new"]


def test_inserting_a_line_item_changes_one_part_not_every_later_one() -> None:
    rng = random.Random(4)
    creatives = [_creative(rng, c) for c in range(1, 5)]
    ids = sorted(rng.sample(range(1, 50_000), 3000))
    items = [_line_item(rng, i, creatives) for i in ids]
    before = group_by_id(items)
    taken = set(ids)
    new_id = next(i for i in range(25_000, 50_000) if i not in taken)

    after = group_by_id([*items, _line_item(rng, new_id, creatives)])

    changed = [g for g in after if g not in before]
    assert 1 <= len(changed) <= 2  # its own part (split in two if it is a boundary itself)
    assert len(after) - len(before) in (0, 1)
    assert 20 <= len(before) <= 90  # about 3000 / PART_TARGET
    assert max(len(g) for g in before) <= snapshot_module.PART_MAX
