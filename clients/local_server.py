"""`emostream serve` on this machine, in a process of its own, for tools that want a server to talk to
(the demo, benchmarks): started on a free loopback port, ready once /healthz answers, stopped with
SIGTERM as a service manager would."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from types import TracebackType

from emostream.runtime.errors import SessionError

START_TIMEOUT_S = 300.0  # a first start on onnx or compiled exports or compiles its engines first


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalServer:
    """`with LocalServer(["--max-sessions", "4"]) as server: ... server.url ...`"""

    def __init__(self, arguments: Sequence[str] = (), quiet: bool = True, env: Mapping[str, str] | None = None) -> None:
        """`env`: variables set for the server beside this process's (a cache folder, say)."""
        self.port = free_port()
        command = [sys.executable, "-m", "emostream", "serve", "--port", str(self.port), *arguments]
        output = subprocess.DEVNULL if quiet else None
        environment = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
        self.process = subprocess.Popen(command, stdout=output, stderr=subprocess.PIPE if quiet else None,
                                        env=environment, text=True)  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{self.http}/healthz", timeout=1).read()
                return
            if self.process.poll() is not None:
                _, err = self.process.communicate()
                raise SessionError(f"the server did not start: {(err or '').strip().splitlines()[-1:]}")
            time.sleep(0.05)  # `emostream bench startup` times this wait
        self.stop()
        raise SessionError(f"the server did not answer within {START_TIMEOUT_S:.0f} s")

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.communicate()

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
