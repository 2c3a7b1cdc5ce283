"""Emotion from the voice as a control: the estimator's blend mixed with the presenter's chosen emotion.

    emotion input = intensity * ((1 - auto_weight) * onehot(chosen) + auto_weight * estimated blend)

`emotion = "auto"` is neutral with auto_weight 1: the voice alone decides. A presenter who leans a stream
towards "happy" with auto_weight 0.5 keeps half the smile and lets half of an angry voice through. The
arithmetic is in runtime/controls.py (torch-free, for the I/O side); the server runs the estimator in its
slot table (runtime/slot_table.py). `VoiceEmotionStream` runs it (runtime/models/voice_emotion.py) over
one stream of audio chunk by chunk, with its own front-end and state, for the offline path
(`emostream animate --emotion auto`).
"""

from __future__ import annotations

import numpy as np
import torch

from emostream.runtime.audio import LogMelFrontEnd
from emostream.runtime.controls import emotion_vector
from emostream.runtime.models.voice_emotion import NEUTRAL, VoiceEmotion
from emostream.runtime.pitch import PitchFrontEnd


class VoiceEmotionStream:
    """The estimator over one stream: push PCM chunks, read the latest smoothed estimate (that of the
    newest whole step, as in the server)."""

    def __init__(self, model: VoiceEmotion, sample_rate_hz: int) -> None:
        self.model = model
        self.frontend = LogMelFrontEnd(sample_rate_hz)
        self.frontend_state = self.frontend.init_state()
        self.pitch = PitchFrontEnd(sample_rate_hz) if model.pitch else None
        self.state = model.init_state(1)
        self.pending = np.zeros((0, model.width), np.float32)
        self.blend = emotion_vector("neutral", 1.0)
        self.arousal_valence = np.zeros(2, np.float32)
        assert self.blend[NEUTRAL] == 1.0

    @torch.no_grad()
    def push(self, pcm: np.ndarray) -> np.ndarray:
        """Consumes a chunk; returns the smoothed blend after it (8,)."""
        frames, self.frontend_state = self.frontend.push(self.frontend_state, pcm, max_seconds=None)
        if self.pitch is not None:  # both front-ends complete a frame with the same model-rate sample
            frames = np.concatenate([frames, self.pitch.push(pcm)], axis=1)
        self.pending = np.concatenate([self.pending, frames])
        per_step = self.model.spec.inputs_per_step
        n = self.pending.shape[0] // per_step
        no, yes = torch.zeros(1, dtype=torch.bool), torch.ones(1, dtype=torch.bool)
        for k in range(n):
            step = torch.from_numpy(self.pending[k * per_step : (k + 1) * per_step])[None]
            outputs, self.state = self.model.step(self.model.split(step), self.state, torch.zeros(1, 1), no, yes)
            self.blend = outputs["emotion"][0, 0].numpy()
            self.arousal_valence = outputs["arousal_valence"][0, 0].numpy()
        self.pending = self.pending[n * per_step :]
        return self.blend
