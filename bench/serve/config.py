"""The serving benchmark's settings: worker processes, connections, run lengths, offered
loads, the targets it judges by, and the wrk script."""

import importlib.util
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
BIN = Path(sys.executable).parent
# Serving worker processes (`--workers`): one per core by default, as in production. With
# one, the server is pinned to CPU 0 and everything else to CPU 1 (a per-core figure).
WORKERS = os.cpu_count() or 1
CONNECTIONS = 64
SATURATION_WARMUP, OPEN_WARMUP = 2.0, 1.0
N_BODIES = 1000  # distinct bodies per door, sent in turn
FILL_CHECK = 300  # bodies per door sent once, one at a time, before the load runs
LOADS = (0.25, 0.50, 0.75)  # fixed offered loads, fractions of /v1/ad saturation
SWAP_EVERY = 2.0  # seconds between snapshot publishes in the swap run
PROBE_RATE = 1000  # requests/s of the stall probe (GET /v1/health)
HELLO_APP, SERVING_APP = "bench.hello_asgi:app", "adsplatform.asgi:application"
# Targets of issue 19, as ratios to the same run's hello-world (so machines can differ):
# /v1/ad and OpenRTB saturation at least these shares; below MIN_RATIO it is not done.
AIM_RATIO = {"/v1/ad": 0.15, "/openrtb2/auction": 0.13}
MIN_RATIO = 0.10
# p99 at half the measured saturation, and with a snapshot every SWAP_EVERY seconds.
AIM_P99, AIM_SWAP_P99 = 10.0, 15.0
# A verdict needs a quiet machine: above this one-minute load average before the run, the
# figures are printed but judged by nobody.
QUIET_LOAD = 0.5
UVICORN_FAST = [
    f"--{opt}={mod}"
    for opt, mod in (("loop", "uvloop"), ("http", "httptools"))
    if importlib.util.find_spec(mod)
]
WRK_SCRIPT = """\
local bodies = {BODIES}
local i = 0
if #bodies > 0 then
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  request = function()
    i = i % #bodies + 1
    return wrk.format(nil, nil, nil, bodies[i])
  end
end
done = function(s, latency, _)
  local e = s.errors
  io.write(string.format("BENCH %f %f %f %f %f\\n", s.requests, s.duration,
    latency:percentile(50), latency:percentile(99),
    e.status + e.connect + e.read + e.write + e.timeout))
end
"""


def log(text: str) -> None:
    print(text, flush=True)


def set_workers(n: int) -> None:
    global WORKERS
    WORKERS = max(1, n)
