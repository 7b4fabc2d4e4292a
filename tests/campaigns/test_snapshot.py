"""Building and publishing the serving snapshot."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from redis import Redis

from campaigns import services
from campaigns.snapshot import (
    PUBLISH_SCRIPT,
    build_snapshot,
    publish_snapshot,
    published_version,
    redis_keys,
)
from creatives.models import Creative
from serving.snapshot import decode_snapshot
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
    data = redis_client.get(redis_keys().snapshot_data(2))
    assert decode_snapshot(data).version == 2  # type: ignore[arg-type]


def test_a_slow_publisher_never_moves_the_version_backwards(redis_client: Redis) -> None:
    keys = redis_keys()
    redis_client.eval(PUBLISH_SCRIPT, 2, keys.snapshot_version, keys.snapshot_data(5), 5, "{}", 60)
    redis_client.eval(PUBLISH_SCRIPT, 2, keys.snapshot_version, keys.snapshot_data(4), 4, "{}", 60)

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
