"""Issue 12 item 10: no process runs outside DEBUG without its secrets, none is derived from a
constant, and the demo's are random, kept in var/ and never used beyond loopback DEBUG."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from adsplatform.launch import configure_demo_security, is_loopback
from adsplatform.secret_keys import REQUIRED_SECRETS, demo_secrets, require_secrets

BASE_DIR = Path(__file__).resolve().parents[2]
GOOD = {name: f"{name.lower()}-{'x' * 40}" for name in REQUIRED_SECRETS}


def _env_without(*names: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in names}
    env.update(DJANGO_DEBUG="false", DJANGO_SETTINGS_MODULE="adsplatform.settings", **extra)
    return env


@pytest.mark.parametrize("missing", REQUIRED_SECRETS)
def test_each_missing_secret_is_refused_by_name(missing: str) -> None:
    values = {name: value for name, value in GOOD.items() if name != missing}

    with pytest.raises(ImproperlyConfigured) as refused:
        require_secrets(values)

    assert f"{missing} is not set" in str(refused.value)
    assert [n for n in REQUIRED_SECRETS if n in str(refused.value)] == [missing]


def test_every_missing_secret_is_named_at_once() -> None:
    with pytest.raises(ImproperlyConfigured) as refused:
        require_secrets({})

    assert str(refused.value).startswith(
        "refusing to start: DJANGO_SECRET_KEY is not set; SERVING_SIGNING_KEY is not set; "
        "PSEUDONYM_SECRET is not set."
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("None", "is a public placeholder ('None')"),
        ("change-me", "is a public placeholder ('change-me')"),
        ("insecure-dev-only", "is a public placeholder ('insecure-dev-only')"),
        ("short-but-random-7f3a", "is shorter than 32 characters"),
    ],
)
def test_public_or_weak_secrets_are_refused(value: str, problem: str) -> None:
    with pytest.raises(ImproperlyConfigured) as refused:
        require_secrets({**GOOD, "SERVING_SIGNING_KEY": value})

    assert f"SERVING_SIGNING_KEY {problem}" in str(refused.value)


def test_good_secrets_pass() -> None:
    require_secrets(GOOD)


@pytest.mark.parametrize("missing", ["SERVING_SIGNING_KEY", "PSEUDONYM_SECRET"])
def test_the_web_server_refuses_to_start_without_a_secret(missing: str) -> None:
    # DJANGO_SECRET_KEY set: the others used to be derived from it (or from "None").
    proc = subprocess.run(
        [sys.executable, "-c", "import adsplatform.asgi"],
        cwd=BASE_DIR, env=_env_without(missing), capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert proc.returncode != 0
    assert f"ImproperlyConfigured: refusing to start: {missing} is not set" in proc.stderr


def test_the_web_server_refuses_a_missing_django_secret_key() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "import adsplatform.asgi"],
        cwd=BASE_DIR, env=_env_without("DJANGO_SECRET_KEY"), capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip

    assert proc.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in proc.stderr


def test_the_celery_worker_refuses_to_start_without_a_secret() -> None:
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "celery"), "-A", "adsplatform", "worker",
         "--pool", "solo", "--without-mingle", "--without-gossip", "-l", "warning"],
        cwd=BASE_DIR, env=_env_without("PSEUDONYM_SECRET"), capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip

    assert proc.returncode != 0
    assert "PSEUDONYM_SECRET is not set" in proc.stdout + proc.stderr


def test_settings_derive_no_secret_outside_debug() -> None:
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.SERVING_SIGNING_KEY, settings.PSEUDONYM_SECRET)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=BASE_DIR,
        env=_env_without("SERVING_SIGNING_KEY", "PSEUDONYM_SECRET"),
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip

    assert proc.stdout.strip() == "None None"


def test_demo_secrets_are_random_private_and_kept(tmp_path: Path) -> None:
    first = demo_secrets(tmp_path / "a")
    again = demo_secrets(tmp_path / "a")
    other = demo_secrets(tmp_path / "b")

    assert first == again
    assert set(first) == set(REQUIRED_SECRETS)
    assert len(set(first.values())) == 3
    assert all(first[name] != other[name] for name in REQUIRED_SECRETS)
    require_secrets(first)
    assert stat.S_IMODE((tmp_path / "a" / "secrets.env").stat().st_mode) == 0o600


def test_the_demo_runs_debug_on_loopback_with_its_own_secrets() -> None:
    environ: dict[str, str] = {}

    configure_demo_security("127.0.0.1", environ)

    assert environ["DJANGO_DEBUG"] == "true"
    require_secrets({name: environ[name] for name in REQUIRED_SECRETS})


def test_the_demo_keeps_secrets_the_operator_set() -> None:
    environ = {"SERVING_SIGNING_KEY": GOOD["SERVING_SIGNING_KEY"]}

    configure_demo_security("127.0.0.1", environ)

    assert environ["SERVING_SIGNING_KEY"] == GOOD["SERVING_SIGNING_KEY"]


def test_the_demo_turns_debug_off_beyond_loopback() -> None:
    environ: dict[str, str] = {}

    configure_demo_security("0.0.0.0", environ)  # noqa: S104

    assert environ["DJANGO_DEBUG"] == "false"


def test_the_demo_refuses_debug_beyond_loopback() -> None:
    with pytest.raises(SystemExit) as refused:
        configure_demo_security("0.0.0.0", {"DJANGO_DEBUG": "true"})  # noqa: S104

    assert "refusing to run with DJANGO_DEBUG=true on 0.0.0.0" in str(refused.value)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("localhost", True), ("::1", True), ("[::1]", True),
     ("127.0.0.2", True), ("0.0.0.0", False), ("10.0.0.5", False),  # noqa: S104
     ("ads.example.com", False)],
)  # fmt: skip
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
