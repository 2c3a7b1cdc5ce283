"""The body stream over real loopback sessions: frames, controls, and servers without a gesture model."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from emostream.clients.client import EmostreamClient, ReceivedFrame
from emostream.runtime import protocol as P
from emostream.runtime.errors import ProtocolError, SessionError
from emostream.runtime.rigs import BODY_CHANNELS
from emostream.runtime.server import EmostreamServer
from emostream.runtime.timelines import BODY
from tests.fixtures import server_in_thread
from tests.runtime.test_server import RATE, speech, stream_all

BOTH = ("face", "body")


def by_stream(frames: list[ReceivedFrame], stream: str) -> list[ReceivedFrame]:
    return [f for f in frames if f.stream == stream]


def test_sessions_that_ask_for_the_body_get_every_body_frame_and_others_none() -> None:
    async def main(url: str) -> None:
        body = await EmostreamClient.connect(url, RATE, streams=BOTH)
        face_only = await EmostreamClient.connect(url, RATE)
        assert body.header.streams["body"].fps == 30 and body.header.streams["body"].channels == BODY_CHANNELS
        assert set(face_only.header.streams) == {"face"}
        got_body, got_face = await asyncio.gather(stream_all(body, speech(1.5)), stream_all(face_only, speech(1.5)))
        bodies = by_stream(got_body, "body")
        assert [f.index for f in bodies] == list(range(45)) and bodies[-1].final
        assert [f.index for f in by_stream(got_body, "face")] == list(range(90))
        assert by_stream(got_face, "body") == [] and len(got_face) == 90
        media = [f.media_sample for f in bodies]
        assert media == sorted(media) and media[1] - media[0] == RATE // 30
        quats = np.stack([f.values for f in bodies])[:, : 55 * 4].reshape(-1, 55, 4)
        np.testing.assert_allclose(np.linalg.norm(quats, axis=-1), 1.0, atol=1e-4)
        assert np.isfinite(np.stack([f.values for f in bodies])).all()

    with server_in_thread(body=True, max_sessions=4) as (_, url):
        asyncio.run(asyncio.wait_for(main(url), 60))


def test_a_style_change_moves_the_following_body_frames_and_a_bad_style_is_refused() -> None:
    async def session(url: str, change: bool) -> list[ReceivedFrame]:
        client = await EmostreamClient.connect(url, RATE, streams=BOTH, controls=P.Controls(style="ada", seed=3))
        pcm = speech(1.0)
        await client.send_audio(pcm[:8000])
        if change:
            with pytest.raises(ProtocolError, match="unknown style"):
                await client.set_controls(P.Controls(style="nobody"))
            ack = await client.set_controls(P.Controls(style="cleo"))
            assert ack.controls.style == "cleo"
        else:
            await asyncio.sleep(0.2)
        await client.send_audio(pcm[8000:])
        await client.end()
        return by_stream(client.drain(), "body")

    async def main(url: str) -> None:
        same, changed = await session(url, False), await session(url, True)
        assert len(same) == len(changed) == 30
        a, b = np.stack([f.values for f in same]), np.stack([f.values for f in changed])
        assert not np.allclose(a[-5:], b[-5:], atol=1e-5)  # the frames after the change differ

    with server_in_thread(body=True, max_sessions=4) as (_, url):
        asyncio.run(asyncio.wait_for(main(url), 60))


def test_a_server_without_the_body_says_so() -> None:
    async def main(url: str) -> None:
        with pytest.raises(SessionError, match="streams face only"):
            await EmostreamClient.connect(url, RATE, streams=("body",))
        client = await EmostreamClient.connect(url, RATE, streams=BOTH)
        assert set(client.header.streams) == {"face"}
        await client.connection.close()

    with server_in_thread(body=False, max_sessions=4) as (_, url):
        asyncio.run(asyncio.wait_for(main(url), 60))
    # An unknown style in hello is refused.
    with server_in_thread(body=True, max_sessions=4) as (_, url), pytest.raises(SessionError, match="unknown style"):
        asyncio.run(EmostreamClient.connect(url, RATE, streams=BOTH, controls=P.Controls(style="zed")))


def test_a_body_only_server_sends_no_face_and_spends_no_face_compute() -> None:
    async def main(server: EmostreamServer, url: str) -> None:
        client = await EmostreamClient.connect(url, RATE, streams=BOTH)
        assert set(client.header.streams) == {"body"}
        assert client.header.algorithmic_latency_ms == pytest.approx(200.0, abs=3.0)  # the body's lookahead
        frames = await stream_all(client, speech(1.0))
        assert {f.stream for f in frames} == {"body"} and len(frames) == 30
        assert server.host.loop is not None and set(server.host.loop.table.timelines) == {BODY}  # no face model
        with pytest.raises(SessionError, match="streams body only"):
            await EmostreamClient.connect(url, RATE, streams=("face",))

    with server_in_thread(body=True, face=False, max_sessions=2) as (server, url):
        asyncio.run(asyncio.wait_for(main(server, url), 60))
