"""The hostile-client benchmark at toy size, against a server in this process: it runs, and finds the
server answering every bad message with a documented error and closing with the matching code."""

import asyncio

import pytest

from emostream.benchmarks.hostile import bad_rates, fuzz, idle_sockets, vanishing_sessions
from tests.fixtures import server_in_thread


@pytest.mark.slow
def test_fuzzed_messages_idle_sockets_and_vanishing_clients_leave_the_server_serving() -> None:
    with server_in_thread(max_sessions=40, hello_timeout_s=1.0, idle_timeout_s=1.0) as (server, url):

        async def main() -> None:
            tally, problems = await fuzz(url, 400, seed=3)
            assert problems == []
            assert tally["messages"] == 400 and tally["answered_with_error"] > 100
            assert await idle_sockets(url, 10) == 20
            await vanishing_sessions(url, 5)
            assert await bad_rates(url) == ["bad_audio"] * 4 + ["bad_message"]

        asyncio.run(asyncio.wait_for(main(), 60))
        assert server.io.loop_dead is False
