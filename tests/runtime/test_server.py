"""Real loopback servers: sessions, controls, bad input, slow clients, capacity, token, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import ssl
import subprocess
import urllib.request
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from websockets.asyncio.client import connect

from emostream.clients.client import BlockingClient, EmostreamClient, ReceivedFrame
from emostream.runtime import protocol as P
from emostream.runtime.errors import ProtocolError, SessionError
from emostream.runtime.models.face import FaceConfig, FaceNetwork
from emostream.runtime.server import EmostreamServer, ServerConfig

RATE = 16_000
CHUNK = 320  # 20 ms


@pytest.fixture(scope="module")
def network() -> FaceNetwork:
    torch.manual_seed(0)
    return FaceNetwork(FaceConfig(channels=32, dilations=(1, 2), hidden=48)).eval()


def speech(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    return (8000 * np.sin(2 * np.pi * 180 * t) * (rng.random(t.size) < 0.9) * np.sin(3 * t) ** 2).astype(np.int16)


@contextlib.asynccontextmanager
async def running(network: FaceNetwork, **config: Any) -> AsyncIterator[tuple[EmostreamServer, str]]:
    server = EmostreamServer(network, ServerConfig(port=0, **config))
    port = await server.start()
    try:
        yield server, f"ws://127.0.0.1:{port}"
    finally:
        await server.stop()


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), timeout=60))


async def stream_all(client: EmostreamClient, pcm: np.ndarray) -> list[ReceivedFrame]:
    for start in range(0, pcm.size, CHUNK):
        await client.send_audio(pcm[start : start + CHUNK])
    end = await client.end()
    assert end.reason == "client ended"
    return client.drain()


def test_concurrent_sessions_get_every_frame_in_order_with_stamps(network: FaceNetwork) -> None:
    async def main() -> None:
        async with running(network) as (_, url):
            clients = [await EmostreamClient.connect(url, RATE, controls=P.Controls(seed=i)) for i in range(3)]
            assert clients[0].channels["face"][17] == "jawOpen"
            # Lookahead (7 feature frames) plus the 16 kHz resampler's wait (1 ms); the chunking is the client's.
            assert clients[0].header.algorithmic_latency_ms == pytest.approx(58.33 + 1.0, abs=0.01)
            results = await asyncio.gather(*(stream_all(c, speech(1.0, i)) for i, c in enumerate(clients)))
            for frames in results:
                assert [f.index for f in frames] == list(range(60))
                media = [f.media_sample for f in frames]
                assert media == [k * RATE // 60 for k in range(60)]
                assert frames[-1].final and not any(f.final for f in frames[:-1])
                assert all(f.values.shape == (59,) for f in frames)
                # Sent faster than real time, a chunk's later samples are stamped ahead of the wall clock
                # (its first sample's capture plus their offset), so a quick frame may read up to 20 ms early.
                assert all(f.latency_ms is not None and f.latency_ms >= -CHUNK / RATE * 1000 for f in frames)
            assert not np.allclose(results[0][30].values, results[1][30].values)  # different audio and seed
            for c in clients:
                await c.close()

    run(main)


def test_a_control_changes_the_frames_that_follow_and_is_acknowledged(network: FaceNetwork) -> None:
    async def main() -> None:
        pcm = speech(1.0)
        async with running(network) as (_, url):
            plain = await EmostreamClient.connect(url, RATE, controls=P.Controls(seed=5))
            reference = await stream_all(plain, pcm)
            changed = await EmostreamClient.connect(url, RATE, controls=P.Controls(seed=5))
            half = pcm.size // 2
            for start in range(0, half, CHUNK):
                await changed.send_audio(pcm[start : start + CHUNK])
            while changed.frames.qsize() < 20:  # the first frames are out before the change
                await asyncio.sleep(0.01)
            ack = await changed.set_controls(P.Controls(emotion="surprised", intensity=1.0, transition_ms=0))
            assert ack.controls.emotion == "surprised" and ack.from_sample == half
            with pytest.raises(ProtocolError, match="bad_control"):
                await changed.set_controls(P.Controls(lookahead_ms=0))  # fixed for the session
            for start in range(half, pcm.size, CHUNK):
                await changed.send_audio(pcm[start : start + CHUNK])
            await changed.end()
            frames = changed.drain()
            np.testing.assert_allclose(frames[10].values, reference[10].values, atol=1e-5)
            assert np.abs(frames[55].values - reference[55].values).max() > 1e-3

    run(main)


def test_bad_messages_get_errors_and_never_disturb_other_sessions(network: FaceNetwork) -> None:
    async def main() -> None:
        async with running(network) as (server, url):
            good = await EmostreamClient.connect(url, RATE)
            bad = await EmostreamClient.connect(url, RATE)
            await bad.connection.send("{not json")
            await bad.connection.send(b"\x07garbage")
            await bad.connection.send(bytes([1, 1, 1, 0]) + bytes(20) + bytes(2 * (P.MAX_AUDIO_SAMPLES + 2)))
            await bad.send_audio(speech(0.1))
            await bad.connection.send(P.encode_audio(P.AudioChunk(99, 0, 0, speech(0.1))))  # rewinds
            frames = await stream_all(good, speech(1.0))
            assert len(frames) == 60
            await asyncio.sleep(0.2)
            codes = [e.code for e in bad.errors]
            assert codes == ["bad_message", "bad_message", "too_large", "out_of_order"]
            assert not any(e.fatal for e in bad.errors)
            await bad.send_audio(speech(0.5))  # the bad session still works
            assert len(await stream_all(bad, np.zeros(0, np.int16))) > 0
            for _ in range(100):  # both end cleanly: the bad messages closed nothing
                if not server.sessions:
                    break
                await asyncio.sleep(0.01)
            assert not server.sessions

    run(main)


def test_audio_before_hello_is_refused_and_closed(network: FaceNetwork) -> None:
    async def main() -> None:
        async with running(network) as (server, url):
            async with connect(url) as raw:
                await raw.send(P.encode_audio(P.AudioChunk(0, 0, 0, speech(0.02))))
                reply = P.decode_server_control(await raw.recv())
                assert isinstance(reply, P.Error) and reply.code == "out_of_order" and reply.fatal
                await raw.wait_closed()
                assert raw.close_code == 1008
            assert server.refused == 1

    run(main)


def test_a_client_that_stops_reading_loses_old_frames_not_memory_and_others_keep_pace(network: FaceNetwork) -> None:
    async def main() -> None:
        async with running(network, outbox_frames=4, send_buffer_bytes=4096) as (server, url):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
            port = int(url.rsplit(":", 1)[1])
            sock.connect(("127.0.0.1", port))
            stalled = await connect(url, sock=sock, max_queue=1)
            await stalled.send(P.encode_control(P.Hello(RATE)))
            await stalled.recv()  # the header; after this it reads nothing
            session = next(iter(server.sessions.values())).core
            pcm = speech(20.0)
            for seq, start in enumerate(range(0, pcm.size, 1600)):
                await stalled.send(P.encode_audio(P.AudioChunk(seq, start, 0, pcm[start : start + 1600])))
            healthy = await EmostreamClient.connect(url, RATE)
            frames = await stream_all(healthy, speech(1.0))
            assert [f.index for f in frames] == list(range(60)) and sum(f.dropped_before for f in frames) == 0
            deadline = asyncio.get_running_loop().time() + 20
            while not session.counts["face"].dropped and asyncio.get_running_loop().time() < deadline:
                assert session.queued("face") <= 4
                await asyncio.sleep(0.05)
            assert session.counts["face"].dropped > 0 and session.queued("face") <= 4
            stalled.transport.abort()

    run(main)


def test_capacity_disconnects_free_slots_and_the_token_is_enforced(network: FaceNetwork) -> None:
    async def main() -> None:
        async with running(network, max_sessions=1, token="s3cret") as (server, url):
            with pytest.raises(SessionError, match="unauthorized"):
                await EmostreamClient.connect(url, RATE)
            with pytest.raises(SessionError, match="unauthorized"):
                await EmostreamClient.connect(url, RATE, token="wrong")
            first = await EmostreamClient.connect(url, RATE, token="s3cret")
            with pytest.raises(SessionError, match="server_full"):
                await EmostreamClient.connect(url, RATE, token="s3cret")
            metrics = await asyncio.to_thread(
                lambda: urllib.request.urlopen(url.replace("ws", "http") + "/metrics").read().decode()
            )
            assert "emostream_sessions 1.0" in metrics and "emostream_sessions_refused_total 3.0" in metrics
            assert "emostream_free_slots 0.0" in metrics
            health = await asyncio.to_thread(
                lambda: urllib.request.urlopen(url.replace("ws", "http") + "/healthz").read()
            )
            assert health == b"ok 0 of 1 slots free\n"
            first.connection.transport.abort()  # vanishes without a close handshake
            for _ in range(100):
                if not server.sessions:
                    break
                await asyncio.sleep(0.02)
            second = await EmostreamClient.connect(url, RATE, token="s3cret")
            assert len(await stream_all(second, speech(0.5))) == 30

    run(main)


def test_a_client_that_reconnects_the_moment_its_session_ends_is_admitted(network: FaceNetwork) -> None:
    async def main() -> None:
        async with running(network, max_sessions=1) as (_, url):
            for _ in range(5):  # the loop gives the slot back a tick later; the place is free at once
                client = await EmostreamClient.connect(url, RATE)
                assert len(await stream_all(client, speech(0.2))) > 0

    run(main)


def test_clock_sync_on_loopback_finds_a_tiny_offset(network: FaceNetwork) -> None:
    async def main() -> None:
        async with running(network) as (_, url):
            client = await EmostreamClient.connect(url, RATE)
            estimate = await client.clock_sync(rounds=5)
            assert abs(estimate.offset_us) < 5_000 and 0 <= estimate.round_trip_us < 50_000
            await client.close()

    run(main)


def test_stats_arrive_periodically(network: FaceNetwork) -> None:
    async def main() -> None:
        async with running(network, stats_interval_s=0.1) as (_, url):
            client = await EmostreamClient.connect(url, RATE)
            await client.send_audio(speech(0.5))
            await asyncio.sleep(0.4)
            assert client.last_stats.get("audio_samples") == 8000
            assert json.dumps(client.last_stats)
            await client.close()

    run(main)


def test_a_session_whose_emotion_follows_the_voice_gets_the_estimate_in_its_stats(network: FaceNetwork) -> None:
    async def main() -> None:
        async with running(network, stats_interval_s=0.1) as (_, url):
            client = await EmostreamClient.connect(url, RATE, controls=P.Controls(emotion="auto"))
            plain = await EmostreamClient.connect(url, RATE)
            for start in range(0, RATE, CHUNK):
                await client.send_audio(speech(1.0)[start : start + CHUNK])
                await plain.send_audio(speech(1.0)[start : start + CHUNK])
            await asyncio.sleep(0.4)
            blend = [client.last_stats[f"voice.{name}"] for name in P.EMOTIONS]
            assert sum(blend) == pytest.approx(1.0, abs=1e-3) and min(blend) >= 0
            assert -1 <= client.last_stats["voice.arousal"] <= 1
            assert not any(key.startswith("voice.") for key in plain.last_stats)  # only where asked for
            for session in (client, plain):  # both stream their frames, however slow this machine is
                frames, deadline = [], asyncio.get_running_loop().time() + 10.0
                while len(frames) <= 40 and asyncio.get_running_loop().time() < deadline:
                    frames += session.drain()
                    await asyncio.sleep(0.05)
                assert len(frames) > 40
            await client.close()
            await plain.close()
        async with running(network, voice_emotion=False) as (_, url):
            with pytest.raises(SessionError, match="voice-emotion"):
                await EmostreamClient.connect(url, RATE, controls=P.Controls(emotion="auto"))

    run(main)


def test_region_strengths_apply_to_the_frames_that_follow(network: FaceNetwork) -> None:
    async def main() -> None:
        async with running(network) as (_, url):
            client = await EmostreamClient.connect(url, RATE)
            await client.set_controls(P.Controls(face_strength={"lower": 0.0, "head": 0.0}))
            frames = await stream_all(client, speech(0.5))
            lower = [client.channels["face"].index(n) for n in ("jawOpen", "mouthClose", "mouthFunnel")]
            head = client.channels["face"].index("headYaw")
            assert all(np.all(f.values[lower] == 0) and f.values[head] == 0 for f in frames)
            assert any(f.values[client.channels["face"].index("browInnerUp")] > 0 for f in frames)

    run(main)


def test_idle_sessions_are_closed_with_a_reason(network: FaceNetwork) -> None:
    async def main() -> None:
        async with running(network, idle_timeout_s=0.3) as (server, url):
            client = await EmostreamClient.connect(url, RATE)
            await asyncio.sleep(0.8)
            assert [e.code for e in client.errors] == ["idle_timeout"] and client.errors[0].fatal
            assert not server.sessions

    run(main)


def test_shutdown_ends_open_sessions_with_a_reason(network: FaceNetwork) -> None:
    async def main() -> None:
        server = EmostreamServer(network, ServerConfig(port=0))
        port = await server.start()
        client = await EmostreamClient.connect(f"ws://127.0.0.1:{port}", RATE)
        await server.stop()
        await asyncio.sleep(0.1)
        assert [e.code for e in client.errors] == ["shutting_down"]
        assert client.connection.close_code == 1001

    run(main)


def test_tls_sessions_work_with_a_certificate(network: FaceNetwork, tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)  # fmt: skip

    async def main() -> None:
        async with running(network, certfile=cert, keyfile=key) as (_, url):
            context = ssl.create_default_context(cafile=str(cert))
            client = await EmostreamClient.connect(url.replace("ws://", "wss://"), RATE, ssl_context=context)
            assert len(await stream_all(client, speech(0.5))) == 30

    run(main)


def test_the_blocking_client_streams_too(network: FaceNetwork) -> None:
    async def main() -> None:
        async with running(network) as (_, url):

            def blocking() -> int:
                client = BlockingClient(url, RATE)
                pcm = speech(0.5)
                for start in range(0, pcm.size, CHUNK):
                    client.send_audio(pcm[start : start + CHUNK])
                client.end()
                n = len(client.frames())
                client.close()
                return n

            assert await asyncio.to_thread(blocking) == 30

    run(main)


def test_a_session_the_inference_loop_cannot_serve_is_closed_with_internal(
    network: FaceNetwork, monkeypatch: pytest.MonkeyPatch
) -> None:
    from emostream.runtime.slot_table import SlotTable

    original = SlotTable.control

    def fails_for_contempt(self, slot, change, from_sample):  # type: ignore[no-untyped-def]
        if change.emotion is not None and change.emotion[P.EMOTIONS.index("contempt")] > 0:
            raise RuntimeError("simulated fault")
        return original(self, slot, change, from_sample)

    monkeypatch.setattr(SlotTable, "control", fails_for_contempt)

    async def main() -> None:
        async with running(network) as (_, url):
            doomed = await EmostreamClient.connect(url, RATE)
            fine = await EmostreamClient.connect(url, RATE)
            await doomed.send_audio(speech(0.1))
            await doomed.set_controls(P.Controls(emotion="contempt"))
            assert len(await stream_all(fine, speech(1.0))) == 60
            await asyncio.sleep(0.2)
            assert [(e.code, e.fatal) for e in doomed.errors] == [("internal", True)]
            assert doomed.connection.close_code == 1011

    run(main)
