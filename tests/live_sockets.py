"""channels' own WebsocketCommunicator, importable without daphne.

`channels.testing/__init__.py` imports its live-server test case, which needs daphne (not a
dependency: granian serves our websockets). Its submodules need nothing of daphne, so the
package is registered without running that `__init__`, and the communicator imported from
its own module, unmodified. With daphne installed this is the ordinary import.
"""

import importlib.util
import sys
import types
from pathlib import Path

import channels

if importlib.util.find_spec("daphne") is None and "channels.testing" not in sys.modules:
    _package = types.ModuleType("channels.testing")
    _package.__path__ = [str(Path(channels.__file__).parent / "testing")]
    sys.modules["channels.testing"] = _package

from channels.testing.websocket import WebsocketCommunicator

__all__ = ["WebsocketCommunicator"]
