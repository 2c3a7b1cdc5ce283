"""The client library against a scripted server: an error about audio that arrives while a control update
waits for its acknowledgement is not taken as the update's refusal (it made `emostream demo --fast` fail
on the first `overloaded` chunk), and a server that closes at once is a refused session."""

import asyncio
import json

import pytest
from websockets.asyncio.server import ServerConnection, serve

from emostream.clients.client import EmostreamClient
from emostream.runtime import protocol as P
from emostream.runtime.errors import ProtocolError, SessionError
from emostream.runtime.rigs import FACE_CHANNELS, FACE_FPS

EFFECTIVE = P.Controls(emotion="happy", intensity=1.0, transition_ms=0.0, seed=0, steps=2, lookahead_ms=58.3,
                       style="ada", face_strength={})  # fmt: skip


async def scripted(connection: ServerConnection) -> None:
    """Header for the hello; for each controls message: an `overloaded` audio error, then the answer
    (an ack, or `bad_control` for an intensity above 1, as a real server refuses it)."""
    P.decode_client_control(await connection.recv())
    header = P.Header("s1", 16_000, {"face": P.StreamInfo(FACE_FPS, FACE_CHANNELS)}, 59.0, EFFECTIVE, 0)
    await connection.send(P.encode_control(header))
    async for message in connection:
        update = json.loads(message)  # read by hand: the codec itself would refuse the bad intensity
        if update.get("type") != "controls":
            continue
        await connection.send(P.encode_control(P.Error("overloaded", "the server is behind; chunk dropped")))
        if update["controls"].get("intensity", 0) > 1:
            await connection.send(P.encode_control(P.Error("bad_control", "intensity must be in [0, 1]")))
        else:
            await connection.send(P.encode_control(P.Ack(update["request_id"], EFFECTIVE, 0)))


def test_a_control_update_is_acknowledged_through_an_audio_error_and_refused_only_by_its_own() -> None:
    async def main() -> None:
        async with serve(scripted, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            client = await EmostreamClient.connect(f"ws://127.0.0.1:{port}", 16_000, streams=("face",))
            ack = await client.set_controls(P.Controls(emotion="happy"), timeout_s=5)
            assert ack.controls.emotion == "happy"
            assert [e.code for e in client.errors] == ["overloaded"]  # kept for the caller, not raised
            with pytest.raises(ProtocolError, match="bad_control"):
                await client.set_controls(P.Controls(intensity=1.5), timeout_s=5)
            await client.close()

    asyncio.run(main())


async def refusing(connection: ServerConnection) -> None:
    """As a server that is stopping answers a new connection: an error and a close, before any hello."""
    await connection.send(P.encode_control(P.Error("shutting_down", "the server cannot take sessions now")))
    await connection.close(1001, "the server cannot take sessions now")


def test_a_server_that_closes_before_the_hello_is_a_refused_session_with_its_reason() -> None:
    # The close can reach the client before it sends its hello (the send then fails) or after (the reply
    # read fails): either way a SessionError, which the bridges retry (it used to escape and end a bridge).
    async def main() -> None:
        async with serve(refusing, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            for _ in range(20):  # the order varies from one connection to the next
                with pytest.raises(SessionError, match="cannot take sessions now"):
                    await EmostreamClient.connect(f"ws://127.0.0.1:{port}", 16_000, streams=("face",))

    asyncio.run(main())
