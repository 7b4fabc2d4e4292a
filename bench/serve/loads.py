"""Load runs against a server: closed loop at saturation (wrk or bench/loadgen.py) and open
loop at a fixed offered load (bench/loadgen.py)."""

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.serve import config
from bench.serve.config import CONNECTIONS, OPEN_WARMUP, ROOT, SATURATION_WARMUP, WRK_SCRIPT
from bench.serve.processes import (
    Redis,
    boost,
    children_cpu,
    machine_busy,
    pin,
    self_cpu,
    spawned,
    stop,
)
from bench.serve.servers import Server


@dataclass
class Run:
    server: str
    case: str  # hello, /v1/ad, /openrtb2/auction
    offered: float = 0.0  # 0: closed loop
    load: str = ""  # "25 %" ... for open loop
    # The run the verdict reads: half of the measured /v1/ad saturation.
    target: bool = False
    rps: float = 0.0
    p50: float = 0.0
    p90: float = 0.0
    p99: float = 0.0
    p999: float = 0.0
    max: float = 0.0
    errors: int = 0
    late: int = 0
    unfinished: int = 0
    lag_p99: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    gen_cpu: float = 0.0  # the generator's use of its core (1.0: all of it)
    server_us: float = 0.0  # server CPU per answered request, µs
    server_util: float = 0.0  # cores the server used (1.0: all of its pinned core)
    redis_us: float = 0.0
    other_cpu: float = 0.0  # cores used by processes that are not part of the run
    worst: list[Any] = field(default_factory=list)
    generator: str = "python"
    note: str = ""


class Load:
    """Runs the generator (pinned to CPU 1) against a server and samples CPU counters."""

    def __init__(self, tmp: Path, redis: Redis, use_wrk: bool) -> None:
        self.tmp, self.redis, self.use_wrk = tmp, redis, use_wrk

    def raw(self, port: int, path: str, bodies: list[str]) -> list[str]:
        head = f"{'POST' if bodies else 'GET'} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        return [
            f"{head}Content-Type: application/json\r\nContent-Length: {len(b)}\r\n\r\n{b}"
            for b in bodies
        ] or [f"{head}\r\n"]

    def run(
        self,
        server: Server,
        case: str,
        path: str,
        bodies: list[str],
        seconds: float,
        rate: float = 0.0,
        connections: int = CONNECTIONS,
        on_start: Callable[[], None] | None = None,
        on_end: Callable[[], None] | None = None,
    ) -> Run:
        if self.use_wrk and not rate and on_start is None:
            return self._wrk(server, case, path, bodies, seconds)
        warmup = OPEN_WARMUP if rate else SATURATION_WARMUP
        spin = 0.0012 if config.WORKERS == 1 else 0
        spec = {"port": server.port, "seconds": seconds, "warmup": warmup,
                "connections": connections, "rate": rate, "spin": spin,
                "requests": self.raw(server.port, path, bodies)}  # fmt: skip
        spec_path = self.tmp / "loadgen.json"
        spec_path.write_text(json.dumps(spec))
        cmd = boost(pin(1, [sys.executable, "-m", "bench.loadgen", str(spec_path)]))
        proc = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        spawned.append(proc)  # type: ignore[arg-type]
        marks: dict[str, tuple[float, float, float, float]] = {}
        timer = threading.Timer(warmup + seconds + 30, lambda: stop(proc))  # type: ignore[arg-type]
        timer.start()
        result: dict[str, Any] = {}
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith("MEASURE "):
                    name = line.split()[1]
                    marks[name] = (server.cpu(), self.redis.cpu(), machine_busy(), self_cpu())
                    callback = on_start if name == "start" else on_end
                    if callback is not None:
                        callback()
                elif line.startswith("{"):
                    result = json.loads(line)
            proc.wait(timeout=10)
        finally:
            timer.cancel()
            stop(proc)  # type: ignore[arg-type]
        if not result or "start" not in marks or "end" not in marks:
            raise RuntimeError(f"the load generator failed on {server.kind} {case}")
        (s_cpu0, r_cpu0, busy0, me0), (s_cpu1, r_cpu1, busy1, me1) = marks["start"], marks["end"]
        answered = max(1, result["rps"] * seconds)
        ours = (s_cpu1 - s_cpu0) + (r_cpu1 - r_cpu0) + result["cpu"] * seconds + (me1 - me0)
        return Run(
            server=server.kind, case=case, offered=rate, rps=result["rps"], p50=result["p50"],
            p90=result["p90"], p99=result["p99"], p999=result["p999"], max=result["max"],
            errors=result["errors"], late=result["late"], unfinished=result["unfinished"],
            lag_p99=result["lag_p99"], statuses=result["statuses"], gen_cpu=result["cpu"],
            server_us=(s_cpu1 - s_cpu0) / answered * 1e6, server_util=(s_cpu1 - s_cpu0) / seconds,
            redis_us=(r_cpu1 - r_cpu0) / answered * 1e6 if self.redis.proc else 0.0,
            other_cpu=max(0.0, ((busy1 - busy0) - ours) / seconds), worst=result["worst"],
        )  # fmt: skip

    def _wrk(self, server: Server, case: str, path: str, bodies: list[str], seconds: float) -> Run:
        script = self.tmp / "bench.lua"
        lua_bodies = ", ".join(f"[==[{b}]==]" for b in bodies)
        script.write_text(WRK_SCRIPT.replace("{BODIES}", "{" + lua_bodies + "}"))
        url = f"http://127.0.0.1:{server.port}{path}"
        values, marks = [0.0] * 5, []
        for duration in (SATURATION_WARMUP, seconds):  # the first run warms up, discarded
            cmd = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{int(duration)}s", "-s", str(script)]
            marks.append((server.cpu(), self.redis.cpu(), machine_busy(), children_cpu()))
            run = subprocess.run(
                boost(pin(1, [*cmd, url])), capture_output=True, text=True, timeout=duration + 30,
                check=True,
            )  # fmt: skip
            line = next(x for x in run.stdout.splitlines() if x.startswith("BENCH "))
            values = [float(v) for v in line.split()[1:]]
        s_cpu1, r_cpu1, busy1, w_cpu1 = (
            server.cpu(), self.redis.cpu(), machine_busy(), children_cpu()
        )  # fmt: skip
        s_cpu0, r_cpu0, busy0, w_cpu0 = marks[-1]
        reqs, duration_us, p50, p99, errors = values
        seconds_run = duration_us / 1e6
        gen = (w_cpu1 - w_cpu0) / seconds_run  # wrk's own CPU, reaped with it
        ours = (s_cpu1 - s_cpu0) + (r_cpu1 - r_cpu0) + (w_cpu1 - w_cpu0)
        return Run(
            server=server.kind, case=case, rps=reqs / seconds_run, p50=p50 / 1000, p99=p99 / 1000,
            errors=int(errors), server_us=(s_cpu1 - s_cpu0) / max(1, reqs) * 1e6,
            server_util=(s_cpu1 - s_cpu0) / seconds_run,
            redis_us=(r_cpu1 - r_cpu0) / max(1, reqs) * 1e6 if self.redis.proc else 0.0,
            gen_cpu=gen, other_cpu=max(0.0, (busy1 - busy0 - ours) / seconds_run),
            generator="wrk",
        )  # fmt: skip
