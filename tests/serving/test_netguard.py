"""SSRF (issue 12 item 14): serving fetches buyers' endpoints, notice URLs and nurl markup
from public addresses only, checked after DNS resolution, unless a network is allowed."""

import ipaddress
import re
import time
from typing import Any

import pytest

from serving.buyers.pool import BuyerPool
from serving.netguard import FetchPolicy
from tests.serving.buyer_helpers import context, counts, snap, with_pool
from tests.serving.buyer_server import Behaviour, LoopbackBuyer

PUBLIC_ONLY = FetchPolicy()


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # the cloud metadata service
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),  # noqa: S104 - an address to refuse, not one to bind
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fd00:ec2::254", False),  # a cloud metadata service over IPv6
        ("::ffff:127.0.0.1", False),  # loopback in IPv4-mapped form
        ("::ffff:10.0.0.1", False),
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("::ffff:8.8.8.8", True),
    ],
)
def test_only_public_addresses_are_allowed_by_default(address: str, allowed: bool) -> None:
    assert PUBLIC_ONLY.allows(ipaddress.ip_address(address)) is allowed


def test_allowed_networks_open_exactly_those() -> None:
    policy = FetchPolicy.of(["127.0.0.0/8", " 10.9.0.0/16"])

    assert policy.allows(ipaddress.ip_address("127.0.0.2"))
    assert policy.allows(ipaddress.ip_address("10.9.200.1"))
    assert not policy.allows(ipaddress.ip_address("10.8.0.1"))
    with pytest.raises(
        ValueError, match=re.escape("SERVING_FETCH_ALLOWED_NETWORKS: 'ten.0.0.0/8'")
    ):
        FetchPolicy.of(["ten.0.0.0/8"])


def test_a_buyer_on_a_private_address_is_never_reached() -> None:
    with LoopbackBuyer() as buyer:

        async def scenario(pool: BuyerPool) -> Any:
            ctx = context()
            by_ip = await pool.solicit(ctx, [snap(buyer)], ctx.imps, time.monotonic() + 0.3)
            # A name that resolves to loopback is refused as well: the check is on the
            # resolved address the connection would use.
            named = snap(buyer.endpoint.replace("127.0.0.1", "localhost"), 2)
            by_name = await pool.solicit(ctx, [named], ctx.imps, time.monotonic() + 0.3)
            return by_ip, by_name, pool.stats()

        by_ip, by_name, stats = with_pool(scenario, fetch_policy=PUBLIC_ONLY)

        assert buyer.request_count() == 0
        assert (by_ip.outcomes[0].outcome, by_name.outcomes[0].outcome) == ("error", "error")
        assert counts(stats) == {"1:request": 1, "1:error": 1, "2:request": 1, "2:error": 1}


def test_notices_and_markup_fetches_to_private_addresses_are_refused() -> None:
    with LoopbackBuyer(Behaviour(notice_body="<div>markup</div>")) as buyer:

        async def scenario(pool: BuyerPool) -> Any:
            pool.notify(f"{buyer.base_url}/loss?r=${{AUCTION_LOSS}}", {}, buyer_id=3)
            pool.notify(f"http://localhost:{buyer.port}/win", {}, buyer_id=3)
            pool.notify("http://169.254.169.254/latest/meta-data/", {}, buyer_id=3)
            pool.notify("http://[::ffff:127.0.0.1]:1/x", {}, buyer_id=3)
            await pool.drain_notices()
            markup = await pool.fetch_markup(
                f"{buyer.base_url}/win", {}, time.monotonic() + 0.3, buyer_id=3
            )
            return markup, pool.stats()

        markup, stats = with_pool(scenario, fetch_policy=PUBLIC_ONLY)

        assert markup is None
        assert buyer.notice_paths() == []
        # IP literals are refused before any connection; the name only when it resolved.
        assert counts(stats) == {"3:refused_address": 3, "3:notice_error": 1, "3:markup_error": 1}
