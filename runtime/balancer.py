"""The server's side of session-aware load balancing: an HAProxy agent-check responder.

HAProxy connects to the agent port of each server in a backend every `agent-inter` and reads one line
(HAProxy configuration manual, "agent-check"). We answer with the share of session slots still free as
the server's weight, and with `drain` once none is left: HAProxy then sends a drained server no new
connection while its open sessions carry on, and `ready` undoes that when a slot frees. With `balance
leastconn`, new sessions go to the server with the fewest connections for its weight. A server whose
inference loop is gone answers `down`. deploy/haproxy.cfg shows the whole setup.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


def agent_reply(free_slots: int, total_slots: int, alive: bool = True) -> str:
    """The agent's line: `ready up N%` with N the free share (at least 1 while a slot is free), `drain`
    when none is, `down` when the server cannot serve."""
    if not alive:
        return "down\n"
    if free_slots <= 0:
        return "drain\n"
    return f"ready up {max(1, round(100 * free_slots / total_slots))}%\n"


async def serve_agent(host: str, port: int, reply: Callable[[], str]) -> asyncio.Server:
    """A TCP responder that writes `reply()` to each connection and closes it."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(reply().encode())
        try:
            await writer.drain()
        finally:
            writer.close()

    return await asyncio.start_server(answer, host, port, reuse_address=True)
