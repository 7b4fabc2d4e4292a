"""Issue 12 item 5: one crashed process must not take the platform down.

The real launcher (`bin/run`'s `adsplatform.launch run`, two granian workers, a Celery
worker, beat) on a private Redis and its own SQLite file, under a bounded load of ad and
impression requests on a loopback port. kill -9 of one granian worker: granian respawns it,
requests recover within RECOVERY_SECONDS, and the Celery worker and beat keep running (the
launcher used to stop everything when granian exited). kill -9 of the Celery worker: the
launcher restarts it. Ctrl-C still stops everything.
"""

import logging
import signal
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil

from tests.faults.services import LoggedProcess, free_port, private_redis, project_env

HOME_KEY = "pk_demo_home_top"
AD_BODY = {"placement": HOME_KEY, "slots": [{"id": "top", "sizes": ["728x90"]}]}
# From the kill until every request answers again. granian notices the dead worker at once
# and respawns it after --respawn-interval (1 s); the new worker loads the snapshot first.
RECOVERY_SECONDS = 10.0
LOAD_SECONDS = 20.0
LOAD_RATE = 40  # requests per second (ad requests, each followed by its impression)


def _children(proc: psutil.Process) -> list[psutil.Process]:
    return [c for c in proc.children() if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]


def _find(launcher: psutil.Process, needle: str) -> psutil.Process:
    for child in _children(launcher):
        if needle in " ".join(child.cmdline()):
            return child
    running = [c.cmdline() for c in _children(launcher)]
    raise AssertionError(f"no {needle} under the launcher: {running}")


def _load(base: str, until: float, results: list[tuple[float, str]]) -> None:
    """Ad requests (and each ad's impression) at LOAD_RATE until `until`; (time, outcome)."""
    with httpx.Client(base_url=base, timeout=2.0) as client:
        while time.monotonic() < until:
            began = time.monotonic()
            try:
                ad = client.post("/v1/ad", json=AD_BODY)
                outcome = str(ad.status_code)
                if ad.status_code == 200:
                    imp = ad.json()["decisions"][0]["impression_url"]
                    outcome = f"{outcome}/{client.get(imp).status_code}"
            except httpx.HTTPError as error:
                outcome = type(error).__name__
            results.append((began, outcome))
            time.sleep(max(0.0, 1 / LOAD_RATE - (time.monotonic() - began)))


def _wait_serving(base: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.post(f"{base}/v1/ad", json=AD_BODY, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError("the launcher's web server never served an ad")


def test_a_crashed_process_is_replaced_and_the_rest_keeps_running(tmp_path: Path) -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with private_redis(tmp_path / "redis", appendonly=False) as redis_server:
        env = project_env(
            REDIS_URL=redis_server.url,
            DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}",
            STATIC_ROOT=str(tmp_path / "static"),
            MEDIA_ROOT=str(tmp_path / "media"),
            WEB_WORKERS="2",
            DJANGO_DEBUG="true",
            SERVING_PUBLIC_URL=base,
        )
        launcher = LoggedProcess(
            [sys.executable, "-m", "adsplatform.launch", "run", "--port", str(port)],
            env=env, log=tmp_path / "launcher.log",
        )  # fmt: skip
        try:
            _wait_serving(base, timeout=180)
            root = psutil.Process(launcher.proc.pid)
            granian = _find(root, "granian")
            celery_worker = _find(root, " worker ")
            beat = _find(root, " beat ")
            web_workers = _children(granian)
            assert len(web_workers) == 2

            # when: one web worker is killed -9 under load
            results: list[tuple[float, str]] = []
            load = threading.Thread(
                target=_load, args=(base, time.monotonic() + LOAD_SECONDS, results)
            )
            load.start()
            time.sleep(4)
            killed_at = time.monotonic()
            web_workers[0].send_signal(signal.SIGKILL)
            load.join(timeout=LOAD_SECONDS + 30)

            # then: requests recover, the worker is replaced, Celery never noticed
            failed = [(t, o) for t, o in results if o != "200/200"]
            since_kill = [(round(t - killed_at, 2), o) for t, o in failed]
            late = [(t, o) for t, o in since_kill if t > RECOVERY_SECONDS]
            early = [(t, o) for t, o in since_kill if t < 0]
            assert (early, late) == ([], [])
            recovered = max((t for t, _ in failed), default=killed_at) - killed_at
            print(
                f"{len(results)} requests, {len(failed)} failed, all answered again "
                f"{recovered:.1f} s after the kill: {sorted({o for _, o in failed})}"
            )
            assert len([r for r in results if r[0] > killed_at + RECOVERY_SECONDS]) > 100
            assert granian.is_running()
            respawned = _children(granian)
            assert len(respawned) == 2
            assert web_workers[0].pid not in {w.pid for w in respawned}
            assert celery_worker.is_running() and beat.is_running()
            assert _find(root, " worker ").pid == celery_worker.pid

            # when: the Celery worker is killed -9, the launcher starts a new one
            celery_worker.send_signal(signal.SIGKILL)
            launcher.wait_for_text("restarting celery worker", timeout=15)
            replaced = _find(root, " worker ")
            assert replaced.pid != celery_worker.pid
            assert granian.is_running() and beat.is_running()

            # when: Ctrl-C, everything stops
            everything = [granian, replaced, beat, *respawned]
            launcher.proc.send_signal(signal.SIGINT)
            assert launcher.proc.wait(timeout=60) == 0
            _gone, alive = psutil.wait_procs(everything, timeout=10)
            assert alive == []
        finally:
            launcher.stop()
