"""Audio sources for streaming: files paced in real time (or as fast as possible), the microphone via
sounddevice, raw PCM on stdin. Each yields (int16 samples, capture time in microseconds, client clock).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from emostream.clients.client import now_us
from emostream.runtime.audio_files import chunks, read_audio, to_int16


async def file_source(
    path: Path, chunk_ms: float = 20.0, realtime: bool = True
) -> AsyncIterator[tuple[np.ndarray, int]]:
    """A WAV/FLAC file in chunks. With `realtime`, each chunk is released when its last sample would have
    been captured by a live microphone, on a clock of its own (it never waits for the server), and stamped
    with that virtual capture time; otherwise chunks come at once, stamped when they are released."""
    samples, rate = read_audio(path)
    pcm = to_int16(samples)
    started_us = now_us()
    started = time.monotonic()
    for start, chunk in chunks(pcm, rate, chunk_ms):
        if realtime:
            await asyncio.sleep(max(0.0, started + (start + chunk.size) / rate - time.monotonic()))
            yield chunk, started_us + round(start * 1e6 / rate)
        else:
            yield chunk, now_us()


def _offer(queue: asyncio.Queue[tuple[np.ndarray, int]], item: tuple[np.ndarray, int]) -> None:
    """Queues a block unless the consumer is far behind (then the block is dropped, never the process)."""
    if not queue.full():
        queue.put_nowait(item)


async def microphone_source(
    rate_hz: int = 16_000, block_ms: float = 20.0, device: int | str | None = None
) -> AsyncIterator[tuple[np.ndarray, int]]:
    """The microphone through PortAudio. Capture times come from PortAudio's ADC timestamps, mapped onto
    the wall clock once at start."""
    import sounddevice  # needs the PortAudio library (Debian: libportaudio2)

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[np.ndarray, int]] = asyncio.Queue(maxsize=100)
    offset_us: list[float] = []

    def callback(indata: np.ndarray, frames: int, times: object, status: object) -> None:
        adc_s = float(getattr(times, "inputBufferAdcTime", 0.0))
        now_s = float(getattr(times, "currentTime", 0.0))
        if not offset_us:
            offset_us.append(now_us() - now_s * 1e6)
        capture = round(offset_us[0] + adc_s * 1e6) if adc_s else now_us()
        block = indata[:, 0].copy()
        loop.call_soon_threadsafe(_offer, queue, (block, capture))

    blocksize = round(rate_hz * block_ms / 1000)
    with sounddevice.InputStream(
        samplerate=rate_hz, channels=1, dtype="int16", blocksize=blocksize, device=device, callback=callback
    ):
        while True:
            yield await queue.get()


async def stdin_source(rate_hz: int, chunk_ms: float = 20.0) -> AsyncIterator[tuple[np.ndarray, int]]:
    """Raw little-endian int16 mono PCM from standard input (e.g. `arecord -f S16_LE -r 16000 | ...`)."""
    size = 2 * round(rate_hz * chunk_ms / 1000)
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while data := await reader.read(size):
        usable = len(data) - len(data) % 2
        yield np.frombuffer(data[:usable], dtype="<i2").astype(np.int16), now_us() - round(usable / 2 / rate_hz * 1e6)
