"""The three secrets the product cannot run without, and the demo's own random ones.

DJANGO_SECRET_KEY signs sessions and CSRF tokens, SERVING_SIGNING_KEY signs impression and
click URLs (a forged token bills an impression or redirects a click anywhere), and
PSEUDONYM_SECRET keys the pseudonyms of user ids. None of them is derived from another or
from a constant: a deployment sets all three, and a process that would run without one
refuses to start, naming what is missing (`require_secrets`). Settings import stays possible
without them so that tooling (mypy, makemigrations) runs anywhere; the web server, the
Celery worker and beat are what refuse.

The demo (bin/run, or any DEBUG run without them) gets random secrets generated once into
var/secrets.env and kept across runs, so its tokens survive a restart and are never public.
"""

import contextlib
import os
import secrets
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from django.core.checks import CheckMessage, Error, Tags, register
from django.core.exceptions import ImproperlyConfigured

REQUIRED_SECRETS = ("DJANGO_SECRET_KEY", "SERVING_SIGNING_KEY", "PSEUDONYM_SECRET")
# The settings attribute each environment variable ends up in.
SETTING_OF = {
    "DJANGO_SECRET_KEY": "SECRET_KEY",
    "SERVING_SIGNING_KEY": "SERVING_SIGNING_KEY",
    "PSEUDONYM_SECRET": "PSEUDONYM_SECRET",
}
MIN_LENGTH = 32
# Values that were public at some point (old defaults, examples): a key anybody can read in
# this repository signs nothing.
PUBLIC_VALUES = frozenset({"none", "null", "change-me", "insecure-dev-only", "ci-only-secret"})
DEMO_SECRETS_FILE = "secrets.env"


def secret_problem(value: object) -> str | None:
    """Why this value cannot be used as a secret, or None when it can."""
    if value is None or value == "":
        return "is not set"
    text = str(value)
    if text.strip().lower() in PUBLIC_VALUES:
        return f"is a public placeholder ({text!r})"
    if len(text) < MIN_LENGTH:
        return f"is shorter than {MIN_LENGTH} characters"
    return None


def require_secrets(values: Mapping[str, object] | None = None) -> None:
    """Refuse to run without every required secret (each missing one named).

    `values` maps each name in REQUIRED_SECRETS to its value; by default, Django's settings.
    """
    if values is None:
        values = {name: _setting(SETTING_OF[name]) for name in REQUIRED_SECRETS}
    problems = []
    for name in REQUIRED_SECRETS:
        problem = secret_problem(values.get(name))
        if problem:
            problems.append(f"{name} {problem}")
    if problems:
        raise ImproperlyConfigured(
            "refusing to start: "
            + "; ".join(problems)
            + ". Set each to its own long random value (e.g. `python -c 'import secrets; "
            "print(secrets.token_urlsafe(48))'`); see docs/deploy.md."
        )


def _setting(name: str) -> object:
    from django.conf import settings

    try:
        return getattr(settings, name, None)
    except ImproperlyConfigured:  # Django's own refusal of an empty SECRET_KEY
        return None


def demo_secrets(var_dir: Path) -> dict[str, str]:
    """The demo's secrets from var/secrets.env, generated (random, 0600) on first use."""
    path = var_dir / DEMO_SECRETS_FILE
    var_dir.mkdir(parents=True, exist_ok=True)
    wanted = {name: secrets.token_urlsafe(48) for name in REQUIRED_SECRETS}
    # O_EXCL: the web server, the worker and beat may all get here first on a fresh var/.
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("# The demo's secrets, generated on first run. Not for production.\n")
            out.writelines(f"{name}={value}\n" for name, value in wanted.items())
    stored = _read_env_file(path)
    missing = [name for name in REQUIRED_SECRETS if not stored.get(name)]
    if missing:  # a file from before a secret was added, or one being written right now
        with path.open("a") as out:
            out.writelines(f"{name}={wanted[name]}\n" for name in missing)
        stored = _read_env_file(path)
    return {name: stored[name] for name in REQUIRED_SECRETS}


def export_demo_secrets(var_dir: Path, environ: MutableMapping[str, str]) -> None:
    """Put the demo's secrets into the environment, keeping any the operator set."""
    for name, value in demo_secrets(var_dir).items():
        if not environ.get(name):
            environ[name] = value


def _read_env_file(path: Path) -> Mapping[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.startswith("#"):
            out[name.strip()] = value.strip()
    return out


@register(Tags.security, deploy=True)
def check_secrets(app_configs: object, **kwargs: object) -> list[CheckMessage]:
    """`manage.py check --deploy` names a missing or weak secret too."""
    try:
        require_secrets()
    except ImproperlyConfigured as refused:
        return [Error(str(refused), id="adsplatform.E001")]
    return []
