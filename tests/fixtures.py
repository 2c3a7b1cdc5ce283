"""Shared test data: real speech recordings committed under tests/data (made with espeak-ng and sox)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch

from emostream.runtime.models.face import FaceConfig, FaceNetwork
from emostream.runtime.models.gesture import GestureConfig, GestureNetwork
from emostream.runtime.server import EmostreamServer, ServerConfig

DATA = Path(__file__).parent / "data"


@cache
def speech_sample(rate_hz: int) -> np.ndarray:
    """About 2 s of TTS speech as int16 mono PCM at `rate_hz`, resampled by sox (not by our code)."""
    pcm, file_rate = soundfile.read(DATA / f"speech_{rate_hz}.wav", dtype="int16")
    assert file_rate == rate_hz and pcm.ndim == 1
    pcm.setflags(write=False)
    return pcm


def small_face_network(seed: int = 0) -> FaceNetwork:
    """A small untrained face network: fast, and as good as the real one for plumbing tests."""
    torch.manual_seed(seed)
    return FaceNetwork(FaceConfig(channels=32, dilations=(1, 2), hidden=48)).eval()


SMALL_STYLES = ["ada", "ben", "cleo"]


def small_gesture_network(seed: int = 0) -> GestureNetwork:
    """A small untrained gesture network with three style presets, for plumbing tests."""
    torch.manual_seed(seed)
    network = GestureNetwork(GestureConfig(channels=32, dilations=(1, 2), hidden=48, latent=8, style_dim=4),
                             n_styles=len(SMALL_STYLES))  # fmt: skip
    network.style_presets.normal_()
    return network.eval()


@contextmanager
def server_in_thread(seed: int = 0, body: bool = False, **config: Any) -> Iterator[tuple[EmostreamServer, str]]:
    """A real server with a small untrained face model (and with body=True a small gesture model), on a
    free port, its event loop on a thread of its own so blocking code (subprocesses, asyncio.run clients)
    can talk to it. Yields it and its URL. `config`: ServerConfig fields."""
    network = small_face_network(seed)
    loop = asyncio.new_event_loop()
    gesture = (small_gesture_network(seed), SMALL_STYLES) if body else None
    server = EmostreamServer(network, ServerConfig(**{"port": 0, **config}), gesture)
    port = loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield server, f"ws://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
