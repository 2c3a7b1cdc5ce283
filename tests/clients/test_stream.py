import argparse
import asyncio
import json
import threading
from pathlib import Path

import numpy as np
import torch

from clients.stream import add_arguments, stream
from runtime.models.face import FaceConfig, FaceNetwork
from runtime.server import EmostreamServer, ServerConfig
from tests.fixtures import DATA


def test_stream_a_file_to_a_real_server_and_save_frames_like_animate(tmp_path: Path) -> None:
    torch.manual_seed(0)
    network = FaceNetwork(FaceConfig(channels=32, dilations=(1, 2), hidden=48)).eval()
    loop = asyncio.new_event_loop()
    server = EmostreamServer(network, ServerConfig(port=0))
    port = loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        parser = argparse.ArgumentParser()
        add_arguments(parser)
        args = parser.parse_args([str(DATA / "speech_24000.wav"), "--url", f"ws://127.0.0.1:{port}",
                                  "-o", str(tmp_path / "frames.npz"), "--emotion", "happy"])  # fmt: skip
        summary = asyncio.run(stream(args))
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
    assert summary["frames"] == 120
    assert summary["latency"]["p50_ms"] > 0 and summary["latency"]["dropped"] == 0
    saved = np.load(tmp_path / "frames.npz")
    assert saved["face"].shape == (120, 59) and int(saved["fps"]) == 60
    np.testing.assert_allclose(saved["time"][:2], [0, 1 / 60])
    assert json.loads(str(saved["meta"]))["controls"]["emotion"] == "happy"
