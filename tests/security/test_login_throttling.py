"""Issue 12 item 12: failed logins are throttled per account and address (django-axes)."""

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

pytestmark = pytest.mark.django_db

PASSWORD = "the-right-password-42"


@pytest.fixture
def staff() -> Any:
    return get_user_model().objects.create_user(
        "ops", password=PASSWORD, is_staff=True, is_superuser=True
    )


def _post_login(client: Client, url: str, password: str, ip: str = "203.0.113.7") -> Any:
    return client.post(url, {"username": "ops", "password": password}, REMOTE_ADDR=ip)


@pytest.mark.parametrize("url", ["/accounts/login/", "/admin/login/"])
def test_after_the_limit_the_right_password_is_refused_with_a_clear_page(
    staff: Any, url: str, settings: Any
) -> None:
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _post_login(client, url, "wrong").status_code == 200  # the form, with its error

    locked = _post_login(client, url, "wrong")
    right = _post_login(client, url, PASSWORD)

    assert locked.status_code == 429
    assert right.status_code == 429
    assert "_auth_user_id" not in client.session
    page = right.content.decode()
    assert "Too many failed logins" in page
    assert "blocked for 15 minutes after 5 failed attempts, even with the right password" in page


def test_the_lock_is_per_account_and_address(staff: Any, settings: Any) -> None:
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _post_login(client, "/accounts/login/", "wrong")

    elsewhere = _post_login(Client(), "/accounts/login/", PASSWORD, ip="198.51.100.9")

    assert elsewhere.status_code == 302  # the same account from another address logs in


def test_the_lock_ends_after_the_cool_off(staff: Any, settings: Any) -> None:
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _post_login(client, "/accounts/login/", "wrong")
    assert _post_login(client, "/accounts/login/", PASSWORD).status_code == 429

    # The cache handler keeps the count in Redis under the cool-off as its expiry; the
    # expiry passing is what ends the lock (the TTL is checked, waiting 15 minutes is not).
    from django_redis import get_redis_connection

    redis = get_redis_connection("default")
    keys = [k for k in redis.scan_iter(match=f"{settings.REDIS_KEY_PREFIX}*axes*")]
    assert keys
    assert all(0 < redis.ttl(k) <= 15 * 60 for k in keys)
    redis.delete(*keys)

    assert _post_login(client, "/accounts/login/", PASSWORD).status_code == 302


def test_a_success_before_the_limit_resets_the_count(staff: Any, settings: Any) -> None:
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _post_login(client, "/accounts/login/", "wrong")
    assert _post_login(client, "/accounts/login/", PASSWORD).status_code == 302
    client.logout()

    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _post_login(client, "/accounts/login/", "wrong")

    assert _post_login(client, "/accounts/login/", PASSWORD).status_code == 302
