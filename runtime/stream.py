"""One stream of one generator at batch one: PCM chunks in, frames out (60 fps faces or 30 fps poses),
through a one-slot SlotTable: the very code the server runs for every session.

Frame k stands for media time k / fps. `finish` appends silence after the audio so the last frames,
which wait for the lookahead, come out too.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import numpy as np

from emostream.runtime.audio import validate_pcm
from emostream.runtime.audio_table import AudioTable
from emostream.runtime.batched_frontend import INPUT_RING
from emostream.runtime.controls import emotion_vector
from emostream.runtime.messages import SlotChange, SlotSettings
from emostream.runtime.noise import BODY_NOISE, FACE_NOISE
from emostream.runtime.rigs import FACE_FPS
from emostream.runtime.slot_table import SlotTable, Timeline
from emostream.runtime.step import StepRunner, StreamingGenerator

TAIL_SECONDS = 0.05  # silence past the lookahead that `finish` appends, so every frame's audio is complete


class GeneratorStream:
    """`generator`'s frames for one stream of audio. Its outputs[0] (face frames, or the gesture
    generator's pose features) are what `push` and `finish` return."""

    def __init__(
        self,
        generator: StreamingGenerator,
        sample_rate_hz: int,
        seed: int = 0,
        emotion: np.ndarray | None = None,
        make_runner: Callable[[StreamingGenerator], StepRunner] | None = None,
        fps: int = FACE_FPS,
        style: np.ndarray | None = None,
    ) -> None:
        """`make_runner` wraps the generator for an engines backend (None: eager)."""
        self.sample_rate_hz, self.fps = sample_rate_hz, fps
        face = fps == FACE_FPS
        n_steps = int(getattr(generator, "n_steps", 2))

        def make_generator(steps: int) -> StreamingGenerator:
            return generator

        lookahead_s = float(getattr(generator, "lookahead_ms", 0.0)) / 1000
        timeline = Timeline("face" if face else "body", generator.spec.outputs[0].name, make_generator,
                            make_runner or (lambda g: g), 1, fps, FACE_NOISE if face else BODY_NOISE, lookahead_s,
                            n_steps)  # fmt: skip
        self.audio = AudioTable(1, threading.Lock())
        self.table = SlotTable(self.audio, lambda key: timeline, device=timeline.device)
        self.slot, _ = self.audio.claim(0) or (0, 0)
        start = emotion if emotion is not None else emotion_vector("neutral", 1.0)
        if timeline.style_dim and style is None:
            style = np.zeros(timeline.style_dim, np.float32)
        settings = SlotSettings(sample_rate_hz, seed, start, n_steps, 0 if face else None, style)
        self.table.timelines[0 if face else "body"] = timeline
        self.table.open(self.slot, settings)
        self.samples_in = 0
        self.frames_out = 0

    def set_emotion(self, vector: np.ndarray, transition_ms: float = 300.0) -> None:
        """Blends from the current emotion to `vector` over transition_ms of media time."""
        self.table.control(self.slot, SlotChange(emotion=vector, transition_ms=transition_ms), self.samples_in)

    def push(self, pcm: np.ndarray) -> np.ndarray:
        """Consumes a PCM chunk (int16 or float32); returns the frames (n, channels) it completes."""
        samples = validate_pcm(pcm, self.sample_rate_hz, max_seconds=None).astype(np.float32)
        out = []
        piece = INPUT_RING.size // 4  # the ring holds a few pieces; each is stepped before the next goes in
        for start in range(0, samples.size, piece):
            part = samples[start : start + piece]
            assert self.audio.write(self.slot, self.samples_in, part, 0, 0)
            self.samples_in += part.size
            out.append(self._run())
        return self._frames(out)

    def finish(self) -> np.ndarray:
        """Ends the audio: silence until every frame up to the end is out; returns those frames."""
        n_total = math.ceil(self.samples_in / self.sample_rate_hz * self.fps)
        timeline = next(iter(self.table.timelines.values()))
        tail = math.ceil((timeline.lookahead_s + TAIL_SECONDS) * self.sample_rate_hz)
        tail += -(-self.sample_rate_hz // 50)  # and the resampler's wait, 20 ms at most
        assert self.audio.append_silence(self.slot, tail)
        out = [self._run()]
        frames = self._frames(out)
        return frames[: max(0, frames.shape[0] - (self.frames_out - n_total))]

    def _run(self) -> np.ndarray:
        parts = []
        while True:
            computed = self.table.run_frontend()
            parts += [made.values for made in self.table.step_ready()]
            if computed == 0 and not self.table.has_backlog():
                break
        frames = np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
        self.frames_out += frames.shape[0]
        return frames

    def _frames(self, parts: list[np.ndarray]) -> np.ndarray:
        timeline = next(iter(self.table.timelines.values()))
        channels = timeline.generator(int(timeline.n_steps[self.slot])).spec.outputs[0].shape[-1]
        parts = [p for p in parts if p.size]
        return np.concatenate(parts) if parts else np.zeros((0, channels), np.float32)
