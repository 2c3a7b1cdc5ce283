"""Scale-out: two workers behind HAProxy (Debian's), with the shipped deploy/haproxy.cfg: sessions spread
over the workers, a full worker is drained by its agent and never overloaded, and a refusal is polite."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus

from emostream.clients.client import EmostreamClient
from emostream.runtime.balancer import agent_reply
from emostream.runtime.errors import SessionError
from tests.fixtures import server_in_thread
from tests.runtime.test_server import RATE, speech, stream_all

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "haproxy.cfg"
pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None, reason="needs HAProxy (Debian: haproxy)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def haproxy(workers: list[str], agents: list[int]) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "EMOSTREAM_BIND": f"127.0.0.1:{port}"}
    for i, (worker, agent) in enumerate(zip(workers, agents, strict=True), start=1):
        env |= {f"EMOSTREAM_WORKER_{i}": worker, f"EMOSTREAM_AGENT_{i}": str(agent)}
    process = subprocess.Popen(["haproxy", "-f", str(CONFIG)], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            time.sleep(0.05)
        time.sleep(1.5)  # the first health and agent checks
        yield f"ws://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(5)


def test_the_agent_reports_free_slots_and_drains_when_full() -> None:
    assert agent_reply(3, 4) == "ready up 75%\n"
    assert agent_reply(1, 1000) == "ready up 1%\n"
    assert agent_reply(0, 4) == "drain\n"
    assert agent_reply(2, 4, alive=False) == "down\n"


@pytest.mark.slow
def test_sessions_spread_over_workers_and_a_full_worker_is_drained_not_overloaded() -> None:
    agents = [free_port(), free_port()]
    with (
        server_in_thread(max_sessions=2, agent_port=agents[0]) as (first, url_1),
        server_in_thread(seed=1, max_sessions=2, agent_port=agents[1]) as (second, url_2),
        haproxy([url_1[5:], url_2[5:]], agents) as front,
    ):

        async def main() -> None:
            clients = []
            for _ in range(4):
                clients.append(await EmostreamClient.connect(front, RATE))
                await asyncio.sleep(0.7)  # the agents report the new load before the next session
            assert len(first.sessions) == len(second.sessions) == 2  # two each: spread, never three on one
            # Both full: the balancer has no worker to offer, or a worker refuses; either way, politely.
            with pytest.raises((InvalidStatus, SessionError)) as refused:
                await EmostreamClient.connect(front, RATE)
            assert "503" in str(refused.value) or "server_full" in str(refused.value)
            # The four sessions are served in full all the same.
            results = await asyncio.gather(*(stream_all(c, speech(0.5, i)) for i, c in enumerate(clients)))
            assert all(len(frames) == 30 for frames in results)
            await asyncio.sleep(1.0)  # the agents report the slots free again
            again = await EmostreamClient.connect(front, RATE)
            assert len(await stream_all(again, speech(0.5))) == 30

        asyncio.run(asyncio.wait_for(main(), 60))
