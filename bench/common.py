"""What the benchmark scripts share."""

import os
import secrets
from pathlib import Path


def configure(tmp: Path) -> str:
    """Environment for Django (and any server started from here), set before settings load.

    A SQLite file in `tmp`, Redis db 11 unless REDIS_URL says otherwise, and a key prefix of
    this run's own, so cleaning up touches nothing else. Returns the prefix.
    """
    prefix = f"bench:{secrets.token_hex(4)}:"
    (tmp / "static").mkdir(parents=True, exist_ok=True)  # no warning from WhiteNoise
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/11")
    os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(32))
    os.environ.update(
        DATABASE_URL=f"sqlite:///{tmp / 'bench.sqlite3'}",
        REDIS_KEY_PREFIX=prefix,
        MEDIA_ROOT=str(tmp / "media"),
        STATIC_ROOT=str(tmp / "static"),
        DJANGO_DEBUG="false",
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="adsplatform.settings",
    )
    return prefix
