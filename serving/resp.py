"""A Redis client for the serving hot path whose commands are packed by hiredis, in C.

redis-py's asyncio connection packs every command in Python (`pack_command`: one encode,
join and length per argument). A serving batch carries three or so commands per ad request,
and packing them was the largest single cost of a request in the profile (about a fifth of
its CPU). hiredis (already installed for parsing replies) has a packer; this swaps it in for
the connections of one client, keeping everything else of redis-py as it is.
"""

from typing import Any

import hiredis
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection


def _pack_command(self: AbstractConnection, *args: Any) -> list[bytes]:
    # As redis-py does: "SCRIPT LOAD" and the like arrive as one first argument.
    first = args[0]
    if isinstance(first, str):
        args = (*first.encode().split(), *args[1:])
    elif b" " in first:
        args = (*first.split(), *args[1:])
    try:
        return [hiredis.pack_command(args)]
    except TypeError:  # bytearray or memoryview arguments: hiredis wants bytes
        plain: tuple[Any, ...] = tuple(
            bytes(a) if isinstance(a, bytearray | memoryview) else a for a in args
        )
        return [hiredis.pack_command(plain)]


_fast_classes: dict[type, type] = {}


def _fast(cls: type[AbstractConnection]) -> type[AbstractConnection]:
    if cls not in _fast_classes:
        _fast_classes[cls] = type(f"Fast{cls.__name__}", (cls,), {"pack_command": _pack_command})
    return _fast_classes[cls]


def fast_redis(url: str) -> Redis:
    """`Redis.from_url(url)`, with hiredis packing commands (TCP and unix sockets alike)."""
    pool = ConnectionPool.from_url(url)
    pool.connection_class = _fast(pool.connection_class)
    return Redis(connection_pool=pool)
