"""The event loop the server and the clients run on: uvloop where it is installed, else asyncio's own.

uvloop (libuv under asyncio's API) handles a WebSocket message in a fraction of the standard loop's
Python work; the server and the benchmark clients pass thousands a second at 32 sessions
(docs/server.md has the measurement). Everything works on either loop; `--event-loop asyncio` picks the
standard one.

Also where the server's inference loop runs (`INFERENCE_MODES`): on a thread of the server's process, or
in a process of its own (runtime/inference_process.py), so that the two loops do not share a GIL.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
EVENT_LOOPS = ("uvloop", "asyncio")
INFERENCE_MODES = ("thread", "process")
DEFAULT_INFERENCE = "process"  # what `emostream serve` uses; ServerConfig's default is "thread" (docs/server.md)


def default_event_loop() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run(coroutine: Coroutine[Any, Any, T], event_loop: str | None = None) -> T:
    """asyncio.run on the named loop (default: uvloop when installed)."""
    kind = event_loop or default_event_loop()
    if kind not in EVENT_LOOPS:
        raise ValueError(f"unknown event loop {kind!r}; use one of {', '.join(EVENT_LOOPS)}")
    if kind == "asyncio":
        return asyncio.run(coroutine)
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)
