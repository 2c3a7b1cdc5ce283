"""The inference loop in a child process (`emostream serve`'s default): the same frames and controls as on
a thread, and a child that dies or fails to start is reported, never hung on."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from emostream.clients.client import EmostreamClient, ReceivedFrame
from emostream.engines.factory import BackendFactory
from emostream.runtime import protocol as P
from emostream.runtime.inference_loop import InferenceHost, LoopConfig
from tests.fixtures import server_in_thread, small_face_network
from tests.runtime.test_server import CHUNK, RATE, speech, stream_all


async def face_and_body(url: str, seconds: float, seed: int) -> list[ReceivedFrame]:
    controls = P.Controls(seed=seed, emotion="happy")
    client = await EmostreamClient.connect(url, RATE, streams=("face", "body"), controls=controls)
    return await stream_all(client, speech(seconds, seed))


@pytest.mark.slow
def test_a_process_loop_serves_face_and_body_like_the_thread_loop() -> None:
    results = {}
    for where in ("thread", "process"):
        with server_in_thread(body=True, inference=where) as (server, url):
            results[where] = asyncio.run(face_and_body(url, 1.0, seed=3))
            assert (server.host.loop is None) == (where == "process")
    for stream, count in (("face", 60), ("body", 30)):
        a = np.stack([f.values for f in results["thread"] if f.stream == stream])
        b = np.stack([f.values for f in results["process"] if f.stream == stream])
        assert a.shape[0] == count
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_a_control_reaches_the_child() -> None:
    async def main(url: str) -> tuple[list[ReceivedFrame], list[ReceivedFrame]]:
        pcm = speech(1.0)
        reference = await stream_all(await EmostreamClient.connect(url, RATE, controls=P.Controls(seed=5)), pcm)
        changed = await EmostreamClient.connect(url, RATE, controls=P.Controls(seed=5))
        for start in range(0, pcm.size // 2, CHUNK):
            await changed.send_audio(pcm[start : start + CHUNK])
        await changed.set_controls(P.Controls(emotion="surprised", transition_ms=0))
        for start in range(pcm.size // 2, pcm.size, CHUNK):
            await changed.send_audio(pcm[start : start + CHUNK])
        await changed.end()
        return reference, changed.drain()

    with server_in_thread(inference="process") as (_, url):
        reference, changed = asyncio.run(main(url))
    assert len(reference) == len(changed) == 60
    np.testing.assert_allclose(changed[5].values, reference[5].values, atol=1e-5)
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
        assert "died" in client.errors[0].message
        with pytest.raises(Exception, match="internal"):
            await EmostreamClient.connect(url, RATE)
        health = urllib.request.Request(url.replace("ws", "http") + "/healthz")
        with pytest.raises(urllib.error.HTTPError, match="503"):
            await asyncio.to_thread(urllib.request.urlopen, health)

    with server_in_thread(inference="process") as (server, url):
        assert server.host.pid is not None
        asyncio.run(asyncio.wait_for(main(server.host.pid, url), 30))


def test_a_child_that_cannot_build_its_backend_fails_start_with_its_traceback() -> None:
    host = InferenceHost(LoopConfig(2), small_face_network(), None, BackendFactory("no-such"))
    try:
        with pytest.raises(RuntimeError, match="unknown backend 'no-such'"):
            host.start()
    finally:
        host.close()


def test_stop_ends_the_child() -> None:
    host = InferenceHost(LoopConfig(2), small_face_network(), None)
    try:
        host.start()
        assert host.alive() and host._process is not None
        host.stop()
        assert not host._process.is_alive() and host._process.exitcode == 0
    finally:
        host.close()


@pytest.mark.slow
def test_the_child_logs_through_the_server_while_it_builds_its_engines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)  # the child logs at the server's level: here its engine builds
    host = InferenceHost(LoopConfig(2), small_face_network(), None, BackendFactory("onnx", cache_root=tmp_path))
    try:
        host.start()
        host.stop()
    finally:
        host.close()
    built = [r for r in caplog.records if r.name == "emostream.engines" and "building onnx" in r.getMessage()]
    assert built and all(r.process == host.pid for r in built)
