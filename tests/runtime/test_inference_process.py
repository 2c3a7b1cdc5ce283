"""The inference loop in a child process (`emostream serve`'s default): the same frames and controls as on
a thread, and a child that dies or fails to start is reported, never hung on."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import queue
import signal
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from emostream.clients.client import EmostreamClient, ReceivedFrame
from emostream.engines.factory import BackendFactory
from emostream.runtime import protocol as P
from emostream.runtime.inference import OutFrame
from emostream.runtime.inference_process import FrameBatch, InferenceProcess, PipeCommands
from tests.fixtures import server_in_thread, small_face_network
from tests.runtime.test_server import CHUNK, RATE, speech, stream_all

# The same sampler steps in every run, however far behind a slow machine falls.
NO_SHEDDING: dict[str, Any] = {"shed_after_frames": 10_000, "shed_after_lag_ms": 1e9}


async def face_and_body(url: str, seconds: float, seed: int) -> list[ReceivedFrame]:
    controls = P.Controls(seed=seed, emotion="happy")
    client = await EmostreamClient.connect(url, RATE, streams=("face", "body"), controls=controls)
    return await stream_all(client, speech(seconds, seed))


def test_a_process_loop_serves_face_and_body_like_the_thread_loop() -> None:
    results = {}
    for mode in ("thread", "process"):
        with server_in_thread(body=True, inference=mode, **NO_SHEDDING) as (server, url):
            results[mode] = asyncio.run(face_and_body(url, 1.0, seed=3))
            if mode == "process":
                assert isinstance(server.inference, InferenceProcess)
                assert server.inference.stats.ticks > 0 and len(server.inference.stats.tick_ms) > 0
                metrics = urllib.request.urlopen(url.replace("ws", "http") + "/metrics").read().decode()
                assert "emostream_tick_seconds_count 0" not in metrics
    for mode, frames in results.items():
        for stream_name, count in (("face", 60), ("body", 30)):
            assert [f.index for f in frames if f.stream == stream_name] == list(range(count)), mode
    # Same seed, same audio: the same motion, whichever side of a process boundary the loop runs on (the
    # face and body frames may interleave differently).
    thread, process = (sorted(results[mode], key=lambda f: (f.stream, f.index)) for mode in ("thread", "process"))
    for a, b in zip(thread, process, strict=True):
        assert (a.stream, a.index) == (b.stream, b.index)
        np.testing.assert_allclose(a.values, b.values, atol=1e-5)


def test_a_control_reaches_the_child() -> None:
    async def main(url: str) -> tuple[list[ReceivedFrame], list[ReceivedFrame]]:
        pcm = speech(1.0)
        reference = await stream_all(await EmostreamClient.connect(url, RATE, controls=P.Controls(seed=5)), pcm)
        changed = await EmostreamClient.connect(url, RATE, controls=P.Controls(seed=5))
        for start in range(0, pcm.size // 2, CHUNK):
            await changed.send_audio(pcm[start : start + CHUNK])
        while changed.frames.qsize() < 20:  # the first frames are out before the change
            await asyncio.sleep(0.01)
        ack = await changed.set_controls(P.Controls(emotion="surprised", intensity=1.0, transition_ms=0))
        assert ack.controls.emotion == "surprised"
        for start in range(pcm.size // 2, pcm.size, CHUNK):
            await changed.send_audio(pcm[start : start + CHUNK])
        await changed.end()
        return reference, changed.drain()

    with server_in_thread(inference="process", **NO_SHEDDING) as (_, url):
        reference, changed = asyncio.run(main(url))
    np.testing.assert_allclose(changed[10].values, reference[10].values, atol=1e-5)
    assert np.abs(changed[55].values - reference[55].values).max() > 1e-3


def test_when_the_child_dies_its_sessions_end_with_an_error_and_new_ones_are_refused() -> None:
    async def main(child_pid: int, url: str) -> None:
        client = await EmostreamClient.connect(url, RATE, controls=P.Controls(seed=2))
        await client.send_audio(speech(0.2))
        os.kill(child_pid, signal.SIGKILL)
        for _ in range(100):
            if client.errors:
                break
            await asyncio.sleep(0.05)
        assert [(e.code, e.fatal) for e in client.errors] == [("internal", True)]
        late = await EmostreamClient.connect(url, RATE)
        for _ in range(100):
            if late.errors:
                break
            await asyncio.sleep(0.05)
        assert [e.code for e in late.errors] == ["internal"]

    with server_in_thread(inference="process") as (server, url):
        assert isinstance(server.inference, InferenceProcess) and server.inference.pid is not None
        asyncio.run(main(server.inference.pid, url))
        assert urllib.request.urlopen(url.replace("ws", "http") + "/healthz").status == 200


def test_a_child_that_cannot_build_its_backend_fails_start_with_its_traceback() -> None:
    loop = InferenceProcess(small_face_network(), 2, lambda frames: None, make_runner=BackendFactory("no-such"))
    with pytest.raises(RuntimeError, match="unknown backend 'no-such'"):
        loop.start()


def test_stop_ends_the_child() -> None:
    loop = InferenceProcess(small_face_network(), 2, lambda frames: None)
    loop.start()
    assert loop.pid is not None and loop._process is not None
    loop.stop()
    assert not loop._process.is_alive() and loop._process.exitcode == 0


def test_a_closed_command_pipe_reads_as_stop() -> None:
    receiver, sender = multiprocessing.Pipe(duplex=False)
    commands = PipeCommands(receiver)
    sender.send(("close", ("a",)))
    assert commands.get(timeout=1.0) == ("close", ("a",))
    with pytest.raises(queue.Empty):
        commands.get_nowait()
    sender.close()
    assert commands.get(timeout=1.0) == ("stop", ())


def test_a_frame_batch_crosses_the_pipe_unchanged() -> None:
    frames = [OutFrame(f"s{i}", 10 + i, np.full(223, i, np.float32), 2**40 + i, 2**41 + i, True, "body")
              for i in range(3)]  # fmt: skip
    receiver, sender = multiprocessing.Pipe(duplex=False)
    sender.send(FrameBatch.pack(frames))
    back = receiver.recv().unpack()
    assert [(f.session_id, f.index, f.capture_time_us, f.received_us, f.degraded, f.stream) for f in back] == [
        (f.session_id, f.index, f.capture_time_us, f.received_us, f.degraded, f.stream) for f in frames
    ]
    for a, b in zip(frames, back, strict=True):
        np.testing.assert_array_equal(a.values, b.values)


def test_the_child_logs_through_the_server_while_it_builds_its_engines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)  # the child logs at the server's level: here its engine builds
    loop = InferenceProcess(small_face_network(), 2, lambda frames: None,
                            make_runner=BackendFactory("onnx", cache_root=tmp_path))  # fmt: skip
    loop.start()
    loop.stop()
    built = [r for r in caplog.records if r.name == "emostream.engines" and "building onnx" in r.getMessage()]
    assert built and all(r.process == loop.pid for r in built)
