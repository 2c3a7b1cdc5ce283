"""Batch slots for one generator (face or gesture): many independent streams, one batched step per tick.

Each open slot owns a queue of log-mel frames (prefixed by the face lookahead's silent frames), a noise
generator seeded per stream, an emotion blend, a style embedding when the generator takes one, and a
frame counter. `tick` runs one step over the slots that have the feature frames a step needs (two for
the face, four for the gesture generator), gathered into a compact batch; the others keep their
state untouched, so a slot's frames do not depend on which other slots are open (up to float rounding
of a different batch size, about 1e-7).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from emostream.runtime.audio import LOG_FLOOR, N_MELS
from emostream.runtime.errors import SessionError
from emostream.runtime.models.face import N_EMOTIONS
from emostream.runtime.rigs import FACE_FPS
from emostream.runtime.step import StepRunner, StreamingGenerator

SILENT_FEATURES = math.log(LOG_FLOOR)


@dataclass
class EmotionBlend:
    """The emotion input of one stream, blending linearly to a new target over a number of frames."""

    current: np.ndarray = field(default_factory=lambda: np.zeros(N_EMOTIONS, np.float32))
    fps: int = FACE_FPS  # frames per second of the stream it feeds
    _start: np.ndarray | None = None
    _target: np.ndarray | None = None
    _left: int = 0
    _total: int = 0

    def set(self, target: np.ndarray, transition_ms: float) -> None:
        self._start, self._target = self.current.copy(), target.astype(np.float32)
        self._total = self._left = max(1, round(transition_ms * self.fps / 1000))

    def advance(self) -> np.ndarray:
        """The vector for the next frame."""
        if self._left > 0 and self._start is not None and self._target is not None:
            self._left -= 1
            w = 1.0 - self._left / self._total
            self.current = ((1 - w) * self._start + w * self._target).astype(np.float32)
        return self.current


@dataclass
class Slot:
    pending: np.ndarray  # (n, N_MELS) feature frames not yet stepped
    noise: np.random.Generator  # numpy's: a draw costs a fraction of a torch.Generator's, per slot per step
    emotion: EmotionBlend
    style: np.ndarray | None = None  # (style_dim,) for a generator with a style input
    steps_taken: int = 0
    fresh: bool = True  # reset the slot's state on its first step


@dataclass(frozen=True)
class StreamFrame:
    slot: int
    index: int  # frame k of the stream: media time k / fps
    values: np.ndarray  # the generator's output for that frame


class StreamBatcher:
    """`runner` runs the steps: the generator itself (eager) or an engines backend around it. Runners for
    other sampler step counts of the same network and lookahead share the state layout and may be
    swapped in between ticks."""

    def __init__(
        self, generator: StreamingGenerator, n_slots: int, runner: StepRunner | None = None, fps: int = FACE_FPS
    ) -> None:
        if n_slots < 1:
            raise ValueError("a batcher needs at least one slot")
        self.generator = generator
        self.runner: StepRunner = runner or generator
        self.n_slots = n_slots
        self.fps = fps
        self.slots: list[Slot | None] = [None] * n_slots
        self.state = self.runner.init_state(n_slots)
        self.device = next(iter(self.state.values())).device
        spec = generator.spec
        self.inputs_per_step = spec.inputs_per_step
        self.delay = spec.delay_frames
        self.prefix = int(getattr(generator, "prefix", 0))  # silent feature frames that start a stream
        self.n_noise = spec.noise.shape[0]
        self.output = spec.outputs[0].name
        self.n_channels = spec.outputs[0].shape[-1]
        styles = [t.shape[-1] for t in spec.inputs if t.name == "style"]
        self.style_dim = styles[0] if styles else 0

    def open(self, seed: int, emotion: np.ndarray, style: np.ndarray | None = None) -> int:
        """Takes a free slot for a new stream; raises SessionError when all are taken."""
        for i, slot in enumerate(self.slots):
            if slot is None:
                silence = np.full((self.prefix, N_MELS), SILENT_FEATURES, np.float32)
                blend = EmotionBlend(emotion.copy(), self.fps)
                self.slots[i] = Slot(silence, np.random.default_rng(seed), blend)
                if self.style_dim:
                    self.set_style(i, style if style is not None else np.zeros(self.style_dim, np.float32))
                return i
        raise SessionError(f"all {self.n_slots} slots are in use")

    def set_style(self, index: int, style: np.ndarray) -> None:
        """The style embedding of a stream, used from its next step on."""
        if style.shape != (self.style_dim,):
            raise ValueError(f"a style embedding has {self.style_dim} values, got shape {style.shape}")
        self.slot(index).style = style.astype(np.float32)

    def close(self, index: int) -> None:
        self.slots[index] = None

    def slot(self, index: int) -> Slot:
        slot = self.slots[index]
        if slot is None:
            raise SessionError(f"slot {index} is not open")
        return slot

    def feed(self, index: int, features: np.ndarray) -> None:
        slot = self.slot(index)
        slot.pending = np.concatenate([slot.pending, features.astype(np.float32)])

    def ready(self) -> list[int]:
        need = self.inputs_per_step
        return [i for i, s in enumerate(self.slots) if s is not None and s.pending.shape[0] >= need]

    @torch.no_grad()
    def tick(self, only: set[int] | None = None) -> list[StreamFrame]:
        """One batched step over every ready slot (or the ready ones among `only`); returns the frames it
        completes, warm-up frames excluded."""
        ready = [i for i in self.ready() if only is None or i in only]
        if not ready:
            return []
        # Only the ready slots are stepped: their state rows are gathered into a compact batch and
        # scattered back, so a tick costs what its ready slots cost, not what the whole batcher holds.
        n, per_step = len(ready), self.inputs_per_step
        rows = torch.tensor(ready)
        features = np.zeros((n, per_step, N_MELS), np.float32)
        emotion = np.zeros((n, 1, N_EMOTIONS), np.float32)
        style = np.zeros((n, 1, self.style_dim), np.float32)
        noise = np.empty((n, self.n_noise), np.float32)
        reset = np.zeros(n, dtype=bool)
        for j, i in enumerate(ready):
            slot = self.slot(i)
            features[j], slot.pending = slot.pending[:per_step], slot.pending[per_step:]
            emotion[j, 0] = slot.emotion.advance()
            if slot.style is not None:
                style[j, 0] = slot.style
            noise[j] = slot.noise.standard_normal(self.n_noise, dtype=np.float32)
            reset[j] = slot.fresh
            slot.fresh = False
        device = self.device
        inputs = {"features": torch.from_numpy(features).to(device), "emotion": torch.from_numpy(emotion).to(device)}
        if self.style_dim:
            inputs["style"] = torch.from_numpy(style).to(device)
        rows = rows.to(device)
        state = {k: v.index_select(0, rows) for k, v in self.state.items()}
        active = torch.ones(n, dtype=torch.bool, device=device)
        noise_in, reset_in = torch.from_numpy(noise).to(device), torch.from_numpy(reset).to(device)
        outputs, state = self.runner.step(inputs, state, noise_in, reset_in, active)
        for k, v in state.items():
            self.state[k][rows] = v
        values = outputs[self.output][:, 0].cpu().numpy()
        frames = []
        for j, i in enumerate(ready):
            slot = self.slot(i)
            index = slot.steps_taken - self.delay
            slot.steps_taken += 1
            if index >= 0:
                frames.append(StreamFrame(i, index, values[j].copy()))
        return frames
