"""bin/run's behaviour: quiet by default, the banner again once everything is up, and
--reset-demo deleting only the embedded demo's state."""

import re
import signal
import sys
import time
from pathlib import Path

import pytest

from adsplatform import launch
from tests.faults.services import LoggedProcess, free_port, private_redis, project_env


def test_the_demo_is_quiet_and_prints_the_banner_again_once_up(tmp_path: Path) -> None:
    port = free_port()
    with private_redis(tmp_path / "redis", appendonly=False) as redis_server:
        env = project_env(
            REDIS_URL=redis_server.url,
            DATABASE_URL=f"sqlite:///{tmp_path / 'demo.sqlite3'}",
            STATIC_ROOT=str(tmp_path / "static"),
            MEDIA_ROOT=str(tmp_path / "media"),
        )
        env.pop("DJANGO_DEBUG")  # as bin/run starts: the launcher decides (on, on loopback)
        env.pop("LOG_LEVEL", None)
        launcher = LoggedProcess(
            [sys.executable, "-m", "adsplatform.launch", "run", "--port", str(port)],
            env=env, log=tmp_path / "launcher.log",
        )  # fmt: skip
        try:
            launcher.wait_for_text("Everything is up", timeout=240)
            up_at = len(launcher.text())
            time.sleep(7)  # beat sends its tasks every few seconds: long enough for several
            text = launcher.text()
            launcher.proc.send_signal(signal.SIGINT)
            assert launcher.proc.wait(timeout=60) == 0
        finally:
            launcher.stop()

    assert text.count("login demo / demo-password") == 2
    assert "DEBUG is on" in text
    after = text[up_at:]
    assert not re.search(r"\bINFO\b", after), after[-2000:]
    assert "Sending due task" not in text and "succeeded in" not in text


def test_the_commands_log_at_the_level_asked_for() -> None:
    assert launch.worker_command("warning")[4:6] == ["-l", "warning"]
    assert launch.beat_command(Path("s"), "info")[4:6] == ["-l", "info"]


def test_reset_demo_deletes_the_embedded_demo_state_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(launch, "VAR_DIR", tmp_path)
    (tmp_path / "db.sqlite3").write_text("x")
    (tmp_path / "appendonlydir").mkdir()
    (tmp_path / "appendonlydir" / "redis.aof.1.incr.aof").write_text("x")
    (tmp_path / "media").mkdir()
    (tmp_path / "demo-secrets.env").write_text("kept")

    removed = launch.reset_demo({})

    assert sorted(p.name for p in removed) == ["appendonlydir", "db.sqlite3", "media"]
    assert not any(p.exists() for p in removed)
    assert (tmp_path / "demo-secrets.env").read_text() == "kept"
    with pytest.raises(SystemExit, match="DATABASE_URL"):
        launch.reset_demo({"DATABASE_URL": "postgres://db/prod"})
    with pytest.raises(SystemExit, match="REDIS_URL"):
        launch.reset_demo({"REDIS_URL": "redis://cache:6379/0"})
