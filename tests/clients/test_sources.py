"""Audio sources: the microphone path with a stand-in for PortAudio (no sound card here), stdin, files."""

import asyncio
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest

from emostream.clients.sources import file_source, microphone_source, now_us
from tests.fixtures import DATA


class FakeInputStream:
    """Calls the callback like PortAudio would: int16 blocks with ADC and current stream times."""

    def __init__(self, samplerate: int, channels: int, dtype: str, blocksize: int, device: object, callback) -> None:  # type: ignore[no-untyped-def]
        assert channels == 1 and dtype == "int16"
        self.rate, self.blocksize, self.callback = samplerate, blocksize, callback
        self.running = False

    def _run(self) -> None:
        stream_time = 100.0  # PortAudio's clock has its own origin
        k = 0
        while self.running and k < 10:
            block = np.full((self.blocksize, 1), k, np.int16)
            times = types.SimpleNamespace(inputBufferAdcTime=stream_time - 0.005, currentTime=stream_time)
            self.callback(block, self.blocksize, times, None)
            stream_time += self.blocksize / self.rate
            k += 1
            time.sleep(0.002)

    def __enter__(self) -> "FakeInputStream":
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.running = False


def test_microphone_blocks_come_with_capture_times_from_the_adc_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", types.SimpleNamespace(InputStream=FakeInputStream))

    async def main() -> list[tuple[np.ndarray, int]]:
        blocks = []
        async for block, capture in microphone_source(16_000, 20.0):
            blocks.append((block, capture))
            if len(blocks) == 5:
                break
        return blocks

    started = now_us()
    blocks = asyncio.run(main())
    assert [int(b[0]) for b, _ in blocks] == [0, 1, 2, 3, 4] and all(b.size == 320 for b, _ in blocks)
    captures = np.array([c for _, c in blocks])
    np.testing.assert_allclose(np.diff(captures), 20_000, atol=1)  # exactly one block apart on the ADC clock
    assert started - 10_000 < captures[0] < started + 1_000_000  # mapped onto the wall clock, 5 ms before "now"


def test_a_file_paced_in_real_time_takes_as_long_as_it_sounds(tmp_path: Path) -> None:
    async def main() -> tuple[float, list[int]]:
        start = time.monotonic()
        stamps = [capture async for _, capture in file_source(DATA / "speech_16000.wav", 100.0, realtime=True)]
        return time.monotonic() - start, stamps

    elapsed, stamps = asyncio.run(main())
    assert 1.9 < elapsed < 2.6  # 2 s of audio
    np.testing.assert_allclose(np.diff(stamps), 100_000, atol=1)
