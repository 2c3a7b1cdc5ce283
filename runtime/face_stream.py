"""One face stream: PCM chunks in, 60 fps face frames out, through the streaming front-end and a
one-slot FaceBatcher. The server runs the same batcher with many slots.

Frame k stands for media time k / 60 s. `finish` feeds silence after the audio so the last frames,
which wait for the lookahead, come out too.
"""

from __future__ import annotations

import math

import numpy as np

from runtime.audio import N_MELS, LogMelFrontEnd
from runtime.face_batcher import SILENT_FEATURES, FaceBatcher
from runtime.models.face import N_EMOTIONS, FaceGenerator
from runtime.protocol import EMOTIONS
from runtime.rigs import FACE_FPS
from runtime.step import StepRunner


def emotion_vector(emotion: str, intensity: float) -> np.ndarray:
    """One-hot emotion times intensity: the generator's emotion input."""
    if emotion not in EMOTIONS:
        raise ValueError(f"unknown emotion {emotion!r}; use one of {EMOTIONS}")
    vector = np.zeros(N_EMOTIONS, np.float32)
    vector[EMOTIONS.index(emotion)] = min(max(intensity, 0.0), 1.0)
    return vector


class FaceStream:
    def __init__(
        self,
        generator: FaceGenerator,
        sample_rate_hz: int,
        seed: int = 0,
        emotion: np.ndarray | None = None,
        runner: StepRunner | None = None,
    ) -> None:
        self.sample_rate_hz = sample_rate_hz
        self.front_end = LogMelFrontEnd(sample_rate_hz)
        self.front_state = self.front_end.init_state()
        self.batcher = FaceBatcher(generator, n_slots=1, runner=runner)
        start = emotion if emotion is not None else emotion_vector("neutral", 1.0)
        self.slot = self.batcher.open(seed, start)
        self.samples_in = 0
        self.frames_out = 0

    def set_emotion(self, vector: np.ndarray, transition_ms: float = 300.0) -> None:
        """Blends from the current emotion to `vector` over transition_ms of media time."""
        self.batcher.slot(self.slot).emotion.set(vector, transition_ms)

    def push(self, pcm: np.ndarray) -> np.ndarray:
        """Consumes a PCM chunk; returns the face frames (n, 59) it completes, in order."""
        features, self.front_state = self.front_end.push(self.front_state, pcm)
        self.samples_in += pcm.shape[0]
        return self._run(features)

    def finish(self) -> np.ndarray:
        """Ends the audio: flushes the front-end, then silence until every frame up to the end is out."""
        features, self.front_state = self.front_end.flush(self.front_state)
        frames = [self._run(features)]
        n_total = math.ceil(self.samples_in / self.sample_rate_hz * FACE_FPS)
        silence = np.full((2, N_MELS), SILENT_FEATURES, np.float32)
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
