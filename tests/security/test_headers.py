"""Issue 12 item 13: a Content-Security-Policy on the dashboard, admin and API docs, and TLS
settings from the environment."""

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

pytestmark = pytest.mark.django_db
BASE_DIR = Path(__file__).resolve().parents[2]


def _policy(response: Any) -> dict[str, list[str]]:
    header = response.headers["Content-Security-Policy"]
    return {d.split()[0]: d.split()[1:] for d in header.split("; ")}


@pytest.mark.parametrize("url", ["/accounts/login/", "/admin/login/", "/api/v1/docs/"])
def test_pages_carry_a_content_security_policy(url: str) -> None:
    client = Client()
    client.force_login(get_user_model().objects.create_user("u", password="pw-123456789"))

    response = client.get(url)

    assert response.status_code == 200
    policy = _policy(response)
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'self'"]
    assert policy["base-uri"] == ["'self'"]
    assert policy["form-action"] == ["'self'"]


def test_the_api_docs_load_their_assets_from_our_own_origin() -> None:
    client = Client()
    client.force_login(get_user_model().objects.create_user("u", password="pw-123456789"))

    page = client.get("/api/v1/docs/").content.decode()

    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert any("drf_spectacular_sidecar" in s for s in sources)
    assert all(s.startswith("/") for s in sources)  # nothing from a third-party CDN


def _settings_with(**env: str) -> str:
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
        "s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.CSRF_TRUSTED_ORIGINS)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=BASE_DIR, capture_output=True, text=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "adsplatform.settings", **env},
        check=True, timeout=60,
    )  # fmt: skip
    return proc.stdout.strip()


def test_tls_settings_come_from_the_environment() -> None:
    assert _settings_with(DJANGO_HTTPS="false") == "False False False 0 False []"
    assert (
        _settings_with(DJANGO_HTTPS="true", DJANGO_CSRF_TRUSTED_ORIGINS="https://ads.example.com")
        == "True True True 31536000 True ['https://ads.example.com']"
    )
    assert _settings_with(DJANGO_HTTPS="true", DJANGO_SECURE_HSTS_SECONDS="600",
                          DJANGO_SESSION_COOKIE_SECURE="false") == (
        "True False True 600 True []"
    )  # fmt: skip
