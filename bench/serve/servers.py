"""The servers under test (granian, uvicorn) serving our app or the raw ASGI hello-world."""

import contextlib
import http.client
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.serve import config
from bench.serve.config import BIN, HELLO_APP, UVICORN_FAST
from bench.serve.processes import group_cpu, group_memory_mib, pin, pin_all, spawn, stop

LOADED_RE = re.compile(r"snapshot v(\d+) loaded: .*?([\d.]+) ms")


def request(port: int, method: str, path: str, body: str | None = None) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response
    finally:
        conn.close()


@dataclass
class Server:
    kind: str  # granian or uvicorn
    app: str
    port: int
    log_path: Path
    proc: Any = None
    ready_s: float = 0.0

    def cmd(self) -> list[str]:
        common = ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
        if self.kind == "granian":
            return [str(BIN / "granian"), "--interface", "asgi", "--workers", str(config.WORKERS),
                    *common, self.app]  # fmt: skip
        return [str(BIN / "uvicorn"), "--no-access-log", "--workers", str(config.WORKERS), *common,
                *UVICORN_FAST, self.app]  # fmt: skip

    def start(self) -> "Server":
        # INFO, so the serving app logs "snapshot vN loaded: ... ms" for each version.
        env = {**os.environ, "LOG_LEVEL": "INFO"}
        started = time.monotonic()
        # This script pins itself to CPU 1 and its children inherit that: a multi-worker
        # server is given every core explicitly.
        cmd = pin(0, self.cmd()) if config.WORKERS == 1 else pin_all(self.cmd())
        self.proc = spawn(cmd, self.log_path, env)
        probe = "/" if self.app == HELLO_APP else "/v1/health"
        deadline = started + 300
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited:\n{self.log_path.read_text()[-3000:]}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if request(self.port, "GET", probe).status == 200:
                    self.ready_s = time.monotonic() - started
                    return self
            time.sleep(0.1)
        raise TimeoutError(f"{self.kind} not ready:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)

    def memory(self) -> tuple[float, float]:
        return group_memory_mib(self.proc.pid)

    def cpu(self) -> float:
        return group_cpu(self.proc.pid)

    def loads(self) -> list[tuple[int, float]]:
        """(version, decode+index ms) of every snapshot the serving app loaded so far."""
        text = self.log_path.read_text(errors="replace")
        return [(int(v), float(ms)) for v, ms in LOADED_RE.findall(text)]
