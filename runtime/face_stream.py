"""One face stream: PCM chunks in, 60 fps face frames out, through the streaming front-end and the
face generator's step function (batch of one). The server does the same per slot, batched.

Frame k stands for media time k / 60 s. The stream is prefixed by the lookahead's silent feature frames
(see runtime/models/face.py), and `finish` feeds silence after the audio so the last frames come out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from runtime.audio import LOG_FLOOR, N_MELS, LogMelFrontEnd
from runtime.models.face import N_EMOTIONS, FaceGenerator
from runtime.protocol import EMOTIONS
from runtime.rigs import FACE_FPS

SILENT_FEATURES = math.log(LOG_FLOOR)


def emotion_vector(emotion: str, intensity: float) -> np.ndarray:
    """One-hot emotion times intensity: the generator's emotion input."""
    if emotion not in EMOTIONS:
        raise ValueError(f"unknown emotion {emotion!r}; use one of {EMOTIONS}")
    vector = np.zeros(N_EMOTIONS, np.float32)
    vector[EMOTIONS.index(emotion)] = min(max(intensity, 0.0), 1.0)
    return vector


@dataclass
class FaceStream:
    generator: FaceGenerator
    sample_rate_hz: int
    seed: int = 0
    emotion: np.ndarray = field(default_factory=lambda: emotion_vector("neutral", 1.0))

    def __post_init__(self) -> None:
        self.front_end = LogMelFrontEnd(self.sample_rate_hz)
        self.front_state = self.front_end.init_state()
        self.state = self.generator.init_state(1)
        self.pending = np.full((self.generator.prefix, N_MELS), SILENT_FEATURES, np.float32)
        self.noise = torch.Generator().manual_seed(self.seed)
        self.steps_taken = 0
        self.samples_in = 0

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
        while self.steps_taken - self.generator.delay < n_total:
            frames.append(self._run(silence))
        out = np.concatenate(frames)
        emitted_before = self.steps_taken - self.generator.delay - out.shape[0]
        return out[: max(0, n_total - emitted_before)]

    @torch.no_grad()
    def _run(self, features: np.ndarray) -> np.ndarray:
        self.pending = np.concatenate([self.pending, features])
        frames = []
        yes, no = torch.ones(1, dtype=torch.bool), torch.zeros(1, dtype=torch.bool)
        emotion = torch.from_numpy(self.emotion)[None, None]
        while self.pending.shape[0] >= 2:
            inputs = {"features": torch.from_numpy(self.pending[None, :2].copy()), "emotion": emotion}
            self.pending = self.pending[2:]
            noise = torch.randn((1, self.generator.network.config.n_channels), generator=self.noise)
            outputs, self.state = self.generator.step(inputs, self.state, noise, no, yes)
            if self.steps_taken >= self.generator.delay:  # earlier steps emit warm-up frames
                frames.append(outputs["face"][0].numpy())
            self.steps_taken += 1
        return np.concatenate(frames) if frames else np.zeros((0, self.generator.network.config.n_channels), np.float32)
