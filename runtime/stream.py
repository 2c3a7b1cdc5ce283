"""One stream of one generator: PCM chunks in, frames out (60 fps faces or 30 fps poses), through the
streaming front-end and a one-slot StreamBatcher. The server runs the same batcher with many slots.

Frame k stands for media time k / fps. `finish` feeds silence after the audio so the last frames,
which wait for the lookahead, come out too.
"""

from __future__ import annotations

import math

import numpy as np

from emostream.runtime.audio import N_MELS, LogMelFrontEnd
from emostream.runtime.batcher import SILENT_FEATURES, StreamBatcher
from emostream.runtime.models.face import N_EMOTIONS
from emostream.runtime.protocol import EMOTIONS
from emostream.runtime.rigs import FACE_FPS
from emostream.runtime.step import StepRunner, StreamingGenerator


def emotion_vector(emotion: str, intensity: float) -> np.ndarray:
    """One-hot emotion times intensity: the generator's emotion input."""
    if emotion not in EMOTIONS:
        raise ValueError(f"unknown emotion {emotion!r}; use one of {EMOTIONS}")
    vector = np.zeros(N_EMOTIONS, np.float32)
    vector[EMOTIONS.index(emotion)] = min(max(intensity, 0.0), 1.0)
    return vector


class GeneratorStream:
    def __init__(
        self,
        generator: StreamingGenerator,
        sample_rate_hz: int,
        seed: int = 0,
        emotion: np.ndarray | None = None,
        runner: StepRunner | None = None,
        fps: int = FACE_FPS,
        style: np.ndarray | None = None,
    ) -> None:
        self.sample_rate_hz = sample_rate_hz
        self.fps = fps
        self.front_end = LogMelFrontEnd(sample_rate_hz)
        self.front_state = self.front_end.init_state()
        self.batcher = StreamBatcher(generator, n_slots=1, runner=runner, fps=fps)
        start = emotion if emotion is not None else emotion_vector("neutral", 1.0)
        self.slot = self.batcher.open(seed, start, style)
        self.samples_in = 0
        self.frames_out = 0

    def set_emotion(self, vector: np.ndarray, transition_ms: float = 300.0) -> None:
        """Blends from the current emotion to `vector` over transition_ms of media time."""
        self.batcher.slot(self.slot).emotion.set(vector, transition_ms)

    def push(self, pcm: np.ndarray) -> np.ndarray:
        """Consumes a PCM chunk; returns the frames (n, channels) it completes, in order."""
        features, self.front_state = self.front_end.push(self.front_state, pcm)
        self.samples_in += pcm.shape[0]
        return self._run(features)

    def finish(self) -> np.ndarray:
        """Ends the audio: flushes the front-end, then silence until every frame up to the end is out."""
        features, self.front_state = self.front_end.flush(self.front_state)
        frames = [self._run(features)]
        n_total = math.ceil(self.samples_in / self.sample_rate_hz * self.fps)
        silence = np.full((self.batcher.inputs_per_step, N_MELS), SILENT_FEATURES, np.float32)
        while self.frames_out < n_total:
            frames.append(self._run(silence))
        out = np.concatenate(frames)
        return out[: out.shape[0] - (self.frames_out - n_total)]

    def _run(self, features: np.ndarray) -> np.ndarray:
        self.batcher.feed(self.slot, features)
        frames = []
        while self.batcher.ready():
            frames += [f.values for f in self.batcher.tick()]
        self.frames_out += len(frames)
        return np.stack(frames) if frames else np.zeros((0, self.batcher.n_channels), np.float32)
