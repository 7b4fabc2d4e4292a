"""Building and publishing the serving snapshot."""

from datetime import timedelta
from decimal import Decimal

import msgspec
import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from redis import Redis

from campaigns import services
from campaigns.snapshot import (
    PUBLISH_SCRIPT,
    VERSION_TTL_SECONDS,
    build_snapshot,
    publish_snapshot,
    published_version,
    read_snapshot,
    redis_keys,
    write_snapshot,
)
from creatives.models import Creative
from serving import snapshot as serving_snapshot
from serving.snapshot import Manifest, decode_manifest, encode_snapshot
from tests.conftest import wait_for
from tests.factories import make_campaign, make_line_item, make_placement

pytestmark = pytest.mark.django_db


def test_the_snapshot_holds_live_line_items_with_rendered_creatives() -> None:
    placement = make_placement()
    live = make_line_item(make_campaign(), "2.00")
    make_line_item(make_campaign(active=False), "9.00")  # draft
    make_line_item(make_campaign(end_at=timezone.now() - timedelta(minutes=1)), "9.00")  # ended
    paused = make_line_item(make_campaign(), "9.00")
    services.pause_line_item(paused)
    wrong_size = make_line_item(make_campaign(), "9.00")
    wrong_size.sizes = ["728x90"]  # its only creative is 300x250
    wrong_size.save()

    snapshot = build_snapshot(7, timezone.now())

    assert snapshot.version == 7
    assert [li.id for li in snapshot.line_items] == [live.pk]
    [item] = snapshot.line_items
    assert item.bid == Decimal("2.00")
    [creative] = snapshot.creatives
    assert item.creative_ids == [creative.id]
    assert "%%CLICK_URL%%" in creative.markup
    assert "%%IMP_URL%%" in creative.markup
    assert [p.key for p in snapshot.placements] == [placement.key]


def test_publishing_makes_a_new_current_version(redis_client: Redis) -> None:
    make_line_item(make_campaign(), "2.00")

    first, second = publish_snapshot(), publish_snapshot()

    assert (first, second) == (1, 2)
    assert published_version() == 2
    snapshot = read_snapshot(redis_client, redis_keys(), 2)
    assert snapshot is not None
    assert snapshot.version == 2
    assert len(snapshot.line_items) == 1


def _manifest(client: Redis, version: int) -> Manifest:
    raw = client.get(redis_keys().snapshot_manifest(version))
    assert raw is not None
    return decode_manifest(raw)


def test_versions_share_the_parts_an_edit_did_not_change(
    redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serving_snapshot, "PART_TARGET", 4)  # several parts from a few items
    campaign = make_campaign()
    items = [make_line_item(campaign, "1.00") for _ in range(24)]
    publish_snapshot()
    first = _manifest(redis_client, 1)

    services.update_line_item(items[10], bid=Decimal("1.50"))
    publish_snapshot()

    second = _manifest(redis_client, 2)
    assert second.header == first.header
    assert second.creatives == first.creatives
    assert len(first.line_items) >= 3
    assert len(set(second.line_items) - set(first.line_items)) == 1
    snapshot = read_snapshot(redis_client, redis_keys(), 2)
    assert snapshot is not None
    assert {li.id: li.bid for li in snapshot.line_items}[items[10].pk] == Decimal("1.50")


def test_publishing_writes_only_the_parts_redis_lacks(redis_client: Redis) -> None:
    keys = redis_keys()
    make_line_item(make_campaign(), "2.00")
    snapshot = build_snapshot(1, timezone.now())
    encoded = encode_snapshot(snapshot)

    assert write_snapshot(redis_client, keys, encoded) == (
        True,
        encoded.size - len(encoded.manifest),
    )
    again = encode_snapshot(msgspec.structs.replace(snapshot, version=2))
    assert write_snapshot(redis_client, keys, again) == (True, 0)
    assert published_version() == 2


def test_a_version_whose_parts_are_missing_is_never_made_current(redis_client: Redis) -> None:
    keys = redis_keys()
    make_line_item(make_campaign(), "2.00")
    encoded = encode_snapshot(build_snapshot(1, timezone.now()))
    digests = list(encoded.parts)

    # given a publisher that believes the parts are stored when they are not
    reply = redis_client.eval(
        PUBLISH_SCRIPT, 2 + len(digests), keys.snapshot_version, keys.snapshot_manifest(1),
        *[keys.snapshot_part(d) for d in digests], 1, encoded.manifest, 60,
        *[b"" for _ in digests],
    )  # fmt: skip

    # then nothing is published and it learns which parts to send
    assert reply == list(range(len(digests)))
    assert published_version() == 0
    assert redis_client.get(keys.snapshot_manifest(1)) is None


def test_a_part_that_expired_since_the_last_version_is_sent_again(redis_client: Redis) -> None:
    keys = redis_keys()
    make_line_item(make_campaign(), "2.00")
    publish_snapshot()
    header = _manifest(redis_client, 1).header
    redis_client.delete(keys.snapshot_part(header))

    publish_snapshot()

    assert published_version() == 2
    assert redis_client.exists(keys.snapshot_part(header))
    assert read_snapshot(redis_client, keys, 2) is not None


def test_old_versions_expire_and_shared_parts_live_as_long_as_the_newest(
    redis_client: Redis,
) -> None:
    keys = redis_keys()
    make_line_item(make_campaign(), "2.00")
    publish_snapshot()
    parts = _manifest(redis_client, 1).parts()
    for digest in parts:
        redis_client.expire(keys.snapshot_part(digest), 5)
    redis_client.expire(keys.snapshot_manifest(1), 5)

    publish_snapshot()

    assert 0 < redis_client.ttl(keys.snapshot_manifest(1)) <= 5  # the old version goes
    assert redis_client.ttl(keys.snapshot_manifest(2)) > VERSION_TTL_SECONDS - 60
    for digest in parts:  # its parts stay, since version 2 holds them too
        assert redis_client.ttl(keys.snapshot_part(digest)) > VERSION_TTL_SECONDS - 60
    assert redis_client.ttl(keys.snapshot_version) == -1  # the pointer never expires


def test_a_slow_publisher_never_moves_the_version_backwards(redis_client: Redis) -> None:
    keys = redis_keys()
    make_line_item(make_campaign(), "2.00")
    snapshot = build_snapshot(0, timezone.now())
    newer = encode_snapshot(msgspec.structs.replace(snapshot, version=5))
    older = encode_snapshot(msgspec.structs.replace(snapshot, version=4))

    assert write_snapshot(redis_client, keys, newer)[0] is True
    assert write_snapshot(redis_client, keys, older)[0] is False

    assert published_version() == 5


@pytest.mark.django_db(transaction=True)
def test_a_committed_change_is_published_by_the_worker(celery_worker: None) -> None:
    with transaction.atomic():
        campaign = make_campaign()
        make_line_item(campaign, "1.00")
        assert published_version() == 0  # nothing before the commit
    version = wait_for(published_version)

    services.pause_campaign(campaign)

    wait_for(lambda: published_version() > version)


def test_validation_names_the_problem() -> None:
    campaign = make_campaign()
    with pytest.raises(ValidationError, match="Sizes must look like 300x250; not 300-250"):
        services.create_line_item(campaign=campaign, name="x", bid=Decimal("1"), sizes=["300-250"])
    with pytest.raises(ValidationError, match="end must be after the start"):
        services.create_campaign(
            advertiser=campaign.advertiser,
            name="y",
            start_at=timezone.now(),
            end_at=timezone.now() - timedelta(days=1),
            daily_budget=Decimal("5"),
        )
    not_an_image = Creative(
        advertiser=campaign.advertiser,
        name="z",
        click_url="https://shop.example/",
        image=ContentFile(b"GIF89a but not really", name="fake.png"),
    )
    with pytest.raises(ValidationError, match="not a readable image"):
        not_an_image.full_clean()
