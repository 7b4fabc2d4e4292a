"""The Buyer model, its admin and its place in the snapshot."""

import time
from typing import Any

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from redis import Redis

from campaigns.snapshot import request_snapshot_publish
from serving.buyer_snapshot import buyer_snaps
from serving.keys import RedisKeys, day_of
from serving.models import Buyer
from serving.snapshot import BuyerSnap

# -- the Buyer model, its admin and the snapshot ---------------------------------------


def make_buyer(name: str = "DSP One", **fields: Any) -> Buyer:
    buyer = Buyer(name=name, endpoint="https://dsp.example/openrtb2", **fields)
    buyer.full_clean()
    buyer.save()
    return buyer


@pytest.mark.django_db
def test_a_buyer_is_validated() -> None:
    buyer = Buyer(
        name="DSP", endpoint="ftp://dsp.example/bid", gvl_vendor_id=0, timeout_ms=5, currency="ABC"
    )

    with pytest.raises(ValidationError) as error:
        buyer.full_clean()

    assert set(error.value.message_dict) == {"endpoint", "gvl_vendor_id", "timeout_ms", "currency"}
    with pytest.raises(ValidationError, match="2000"):
        Buyer(name="DSP", endpoint="https://dsp.example/bid", timeout_ms=2001).full_clean()


@pytest.mark.django_db
def test_a_buyer_currency_is_stored_in_upper_case() -> None:
    assert make_buyer(currency="eur").currency == "EUR"


@pytest.mark.django_db
def test_saving_a_buyer_republishes_the_snapshot_with_it(
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        buyer = make_buyer(gvl_vendor_id=77, qps_cap=100, supports_coppa=True)
    make_buyer("Paused DSP", enabled=False)

    assert callbacks == [request_snapshot_publish]
    assert buyer_snaps() == [
        BuyerSnap(
            id=buyer.pk,
            name="DSP One",
            endpoint="https://dsp.example/openrtb2",
            gvl_vendor_id=77,
            timeout_ms=150,
            qps_cap=100,
            currency="USD",
            supports_coppa=True,
        )
    ]


@pytest.mark.django_db
def test_deleting_a_buyer_republishes_the_snapshot(
    django_capture_on_commit_callbacks: Any,
) -> None:
    buyer = make_buyer()

    with django_capture_on_commit_callbacks() as callbacks:
        buyer.delete()

    assert callbacks == [request_snapshot_publish]
    assert buyer_snaps() == []


@pytest.mark.django_db
def test_the_admin_list_shows_todays_outcomes(admin_client: Client, redis_client: Redis) -> None:
    buyer = make_buyer()
    key = RedisKeys(settings.REDIS_KEY_PREFIX).buyer_stats(day_of(time.time()))
    redis_client.hset(
        key,
        mapping={
            f"{buyer.pk}:request": 5,
            f"{buyer.pk}:bid": 2,
            f"{buyer.pk}:latency_ms_sum": 100,
            f"{buyer.pk}:latency_count": 5,
        },
    )

    response = admin_client.get(reverse("admin:serving_buyer_changelist"))

    assert response.status_code == 200
    assert "DSP One" in response.text
    assert "request 5 · bid 2 · avg 20 ms" in response.text


@pytest.mark.django_db
def test_the_admin_change_page_shows_every_counter(
    admin_client: Client, redis_client: Redis
) -> None:
    buyer = make_buyer()
    key = RedisKeys(settings.REDIS_KEY_PREFIX).buyer_stats(day_of(time.time()))
    redis_client.hset(key, mapping={f"{buyer.pk}:request": 3, f"{buyer.pk}:qps_cap": 7})

    response = admin_client.get(reverse("admin:serving_buyer_change", args=[buyer.pk]))

    assert response.status_code == 200
    assert "<tr><td>qps_cap</td><td>7</td></tr>" in response.text


@pytest.mark.django_db
def test_admin_actions_disable_and_enable_buyers_and_republish(
    admin_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    buyer = make_buyer()
    url = reverse("admin:serving_buyer_changelist")

    with django_capture_on_commit_callbacks() as callbacks:
        admin_client.post(url, {"action": "disable", "_selected_action": [buyer.pk]})
    buyer.refresh_from_db()
    assert not buyer.enabled
    assert callbacks == [request_snapshot_publish]
    assert buyer_snaps() == []

    admin_client.post(url, {"action": "enable", "_selected_action": [buyer.pk]})
    assert [b.id for b in buyer_snaps()] == [buyer.pk]
