"""Emotion from the voice: a causal estimate of arousal, valence and an 8-way emotion blend from the same
log-mel frames the face hears and, with `pitch`, the voice's pitch beside them, smoothed so the face does
not flicker.

Per face frame (60 Hz, two feature frames): the frames' mean, normalised by the training set's statistics,
goes through a linear layer and a GRU; a head gives 8 emotion logits and arousal and valence (tanh). With
`members` > 1, several such readers, trained alike from different seeds, are averaged (their
log-probabilities and their axes): two readings of one take err less together than one. The blend is
then averaged exponentially with a time constant of SMOOTHING_S, the two axes with one of
AXES_SMOOTHING_S (the blend's top is the expression the face wears, which should not flip back and
forth; arousal and valence are levels reported to the client; docs/voice-emotion.md), and only while
someone speaks (a loudness gate), so a pause holds the last estimate instead of drifting. The smoothed
blend is stored as its difference from neutral: the zero state of the step contract is then a neutral
estimate, which is where every stream starts.

One step makes `estimates_per_step` of these estimates (4 by default: a step every 67 ms, 15 a second)
and gives the last. At one core and batch 1 a step's cost is mostly a fixed cost per call, so four
estimates a call cost little more than one; a face frame takes the newest whole step's estimate, at
most 50 ms older than its own audio, which next to the 0.8 s average changes nothing one could see.
The weights do not depend on it: training and `estimates` run one estimate per face frame.

Pitch (`pitch`): each frame is the log-mel and, after it, runtime/pitch.py's periodicity and periodicity
times octaves above 100 Hz; a step input of its own (`pitch`, (the step's feature frames, N_PITCH)),
which the server computes only for the slots this estimator steps.

A speaker reference (`reference_s` > 0): the stream's own average of the normalised frames while someone
speaks, over up to `reference_s` seconds of speech, so the estimate can hear "lower and quieter than this
speaker usually is" and not only "a low, quiet voice" (speaker normalisation, as in Busso, Mariooryad,
Metallinou and Narayanan 2013, "Iterative feature normalization scheme for automatic emotion detection
from speech", IEEE Trans. Affective Computing 4). The GRU hears each frame, its difference from the
reference, and how much speech the reference rests on (0 to 1). At the start of a stream the reference
is the first speech itself; a presenter's stream soon holds minutes of their voice.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from emostream.runtime.audio import FEATURE_RATE_HZ, N_MELS, SILENT_LOG_MEL, LogMelFrontEnd
from emostream.runtime.pitch import N_PITCH, model_rate, pitch_frames
from emostream.runtime.protocol import EMOTIONS
from emostream.runtime.step import (
    StepSpec,
    StreamingGenerator,
    TensorDict,
    TensorSpec,
    apply_reset,
    keep_inactive,
    zero_inactive,
)

N_EMOTIONS = len(EMOTIONS)
NEUTRAL = EMOTIONS.index("neutral")
INPUTS_PER_STEP = 2  # feature frames per estimate: one per face frame at 60 Hz
ESTIMATES_PER_STEP = 4  # estimates per step of the streaming path (see the docstring)
SMOOTHING_S = 0.8  # time constant of the blend's exponential average
AXES_SMOOTHING_S = 0.4  # and of arousal's and valence's: a level, to follow the voice sooner
SPEECH_GATE = (-9.5, -7.5)  # mean log-mel from which a frame counts as speech, and as fully speech
STEP_S = INPUTS_PER_STEP / FEATURE_RATE_HZ


class Reader(nn.Module):
    """One reading of the GRU's inputs: a linear layer, a GRU and a head giving 8 emotion logits and arousal
    and valence. The estimator averages `members` of them, trained alike from different seeds."""

    def __init__(self, inputs: int, hidden: int) -> None:
        super().__init__()
        self.encode = nn.Sequential(nn.Linear(inputs, hidden), nn.GELU())
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, N_EMOTIONS + 2)

    def forward(self, x: Tensor, hidden: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        out, last = self.gru(self.encode(x), hidden)
        head = self.head(out)
        return head[..., :N_EMOTIONS], torch.tanh(head[..., N_EMOTIONS:]), last


class VoiceEmotion(StreamingGenerator):
    mean: Tensor  # (width,) buffers: the training set's statistics of log-mel and pitch
    std: Tensor
    rates: Tensor  # (10,) the averages' weights of a new estimate: the blend's 8, then the two axes'

    def __init__(self, hidden: int = 96, smoothing_s: float = SMOOTHING_S, reference_s: float = 0.0,
                 pitch: bool = False, estimates_per_step: int = ESTIMATES_PER_STEP,
                 axes_smoothing_s: float = AXES_SMOOTHING_S, members: int = 1) -> None:  # fmt: skip
        super().__init__()
        self.hidden = hidden
        self.members = members
        self.estimates_per_step = estimates_per_step
        frames = INPUTS_PER_STEP * estimates_per_step
        self.smoothing_s = smoothing_s
        self.axes_smoothing_s = axes_smoothing_s
        rates = [self.alpha(smoothing_s)] * N_EMOTIONS + [self.alpha(axes_smoothing_s)] * 2
        self.register_buffer("rates", torch.tensor(rates), persistent=False)
        self.reference_s = reference_s
        self.pitch = pitch
        self.width = N_MELS + (N_PITCH if pitch else 0)  # per feature frame: log-mel, then pitch
        self.register_buffer("mean", torch.zeros(self.width))
        self.register_buffer("std", torch.ones(self.width))
        inputs = 2 * self.width + 1 if reference_s > 0 else self.width
        self.readers = nn.ModuleList(Reader(inputs, hidden) for _ in range(members))
        reference = (TensorSpec("reference", (self.width,)), TensorSpec("heard", (1,))) if reference_s > 0 else ()
        pitch_input = (TensorSpec("pitch", (frames, N_PITCH)),) if pitch else ()
        self.spec = StepSpec(
            inputs=(TensorSpec("features", (frames, N_MELS)), *pitch_input),
            state=(TensorSpec("hidden", (members * hidden,)), TensorSpec("smoothed", (N_EMOTIONS + 2,)), *reference),
            noise=TensorSpec("noise", (1,)),
            outputs=(TensorSpec("emotion", (1, N_EMOTIONS)), TensorSpec("arousal_valence", (1, 2))),
            inputs_per_step=frames,
            frames_per_step=1,
            delay_frames=0,
            lookahead_inputs=0,
        )

    @property
    def engine_name(self) -> str:
        reference = f"-ref{self.reference_s:g}" if self.reference_s > 0 else ""
        pitch = "-pitch" if self.pitch else ""
        every = f"-x{self.estimates_per_step}"
        members = f"-m{self.members}" if self.members > 1 else ""
        return f"voiceemotion-h{self.hidden}{members}{reference}{pitch}{every}" + ("" if self.masks else "-compact")

    @staticmethod
    def alpha(time_constant_s: float) -> float:
        """An exponential average's weight of a new, fully voiced frame, for its time constant."""
        return 1.0 - math.exp(-INPUTS_PER_STEP / (FEATURE_RATE_HZ * time_constant_s))

    def joined(self, inputs: TensorDict) -> Tensor:
        """The step's inputs as one (batch, 2, width) tensor of frames: log-mel, then pitch."""
        return torch.cat([inputs["features"], inputs["pitch"]], dim=-1) if self.pitch else inputs["features"]

    def split(self, frames: Tensor) -> TensorDict:
        """The step's inputs from (batch, 2, width) joined frames: the inverse of `joined`."""
        if not self.pitch:
            return {"features": frames}
        return {"features": frames[..., :N_MELS], "pitch": frames[..., N_MELS:]}

    def frames(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """(batch, n * 2, width) frames (log-mel, then pitch) -> per-step inputs (batch, n, width) and speech
        gate (batch, n)."""
        b, t, m = features.shape
        pooled = features.reshape(b, t // INPUTS_PER_STEP, INPUTS_PER_STEP, m).mean(dim=2)
        lo, hi = SPEECH_GATE
        gate = ((pooled[..., :N_MELS].mean(dim=-1) - lo) / (hi - lo)).clamp(0.0, 1.0)
        return (pooled - self.mean) / self.std, gate

    def with_reference(
        self, x: Tensor, gate: Tensor, reference: Tensor, heard: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The GRU's inputs (batch, n, 2 width + 1) for frames x (batch, n, width) with speech gate
        (batch, n), from a reference (batch, width) resting on `heard` (batch, 1) seconds of speech; and the
        reference and seconds after them. A running mean of the speech frames, which once `reference_s`
        seconds are heard becomes an exponential average of that time constant."""
        out = []
        for k in range(x.shape[1]):
            weight = gate[:, k : k + 1] * STEP_S
            total = heard + weight
            reference = reference + weight / total.clamp(min=1e-6) * (x[:, k] - reference)
            heard = total.clamp(max=self.reference_s)
            difference = torch.where(heard > 0, x[:, k] - reference, torch.zeros_like(reference))  # none yet
            out.append(torch.cat([x[:, k], difference, heard / self.reference_s], dim=-1))
        return torch.stack(out, dim=1), reference, heard

    def raw(self, x: Tensor, hidden: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Unsmoothed per-step logits (batch, n, 8), arousal-valence (batch, n, 2) and the last hidden (1, batch,
        members * hidden). With several readers, the mean of their log-probabilities and of their axes."""
        if self.members == 1:  # the logits themselves, which training's cross-entropy takes
            return self.readers[0](x, hidden)
        parts = [None] * self.members if hidden is None else [h.contiguous() for h in hidden.split(self.hidden, dim=-1)]
        read = [reader(x, part) for reader, part in zip(self.readers, parts, strict=True)]
        logits = torch.stack([torch.log_softmax(r[0], dim=-1) for r in read]).mean(dim=0)
        axes = torch.stack([r[1] for r in read]).mean(dim=0)
        return logits, axes, torch.cat([r[2] for r in read], dim=-1)

    def _estimate(self, logits: Tensor, axes: Tensor) -> Tensor:
        """Blend minus neutral, then arousal and valence: what the average runs over."""
        blend = torch.softmax(logits, dim=-1)
        neutral = torch.zeros_like(blend)
        neutral[..., NEUTRAL] = 1.0
        return torch.cat([blend - neutral, axes], dim=-1)

    def _smooth(self, estimate: Tensor, gate: Tensor, smoothed: Tensor) -> Tensor:
        """The exponential average after each of the estimates (batch, n, 10), from `smoothed` (batch, 10)."""
        out = []
        for k in range(estimate.shape[1]):
            smoothed = smoothed + self.rates * gate[:, k : k + 1] * (estimate[:, k] - smoothed)
            out.append(smoothed)
        return torch.stack(out, dim=1)

    def _outputs(self, smoothed: Tensor) -> TensorDict:
        blend = smoothed[..., :N_EMOTIONS].clone()
        blend[..., NEUTRAL] += 1.0
        return {"emotion": blend, "arousal_valence": smoothed[..., N_EMOTIONS:]}

    def step(
        self, inputs: TensorDict, state: TensorDict, noise: Tensor, reset: Tensor, active: Tensor
    ) -> tuple[TensorDict, TensorDict]:
        old = state
        if self.masks:
            state = apply_reset(state, self.init_state(reset.shape[0], reset.device), reset)
        x, gate = self.frames(self.joined(inputs))
        new_state: TensorDict = {}
        if self.reference_s > 0:
            x, reference, heard = self.with_reference(x, gate, state["reference"], state["heard"])
            new_state |= {"reference": reference, "heard": heard}
        logits, axes, last = self.raw(x, state["hidden"][None].contiguous())
        smoothed = self._smooth(self._estimate(logits, axes), gate, state["smoothed"])[:, -1]
        new_state |= {"hidden": last[0], "smoothed": smoothed}
        outputs = {k: v[:, None] for k, v in self._outputs(smoothed).items()}
        if self.masks:
            new_state = keep_inactive(new_state, old, active)
            outputs = zero_inactive(outputs, active)
        return outputs, new_state

    def estimates(self, inputs: TensorDict) -> TensorDict:
        """The smoothed estimate after every pair of feature frames (one per face frame) of whole sequences."""
        x, gate = self.frames(self.joined(inputs))
        if self.reference_s > 0:
            x, _, _ = self.with_reference(x, gate, x.new_zeros(x.shape[0], self.width), x.new_zeros(x.shape[0], 1))
        logits, axes, _ = self.raw(x)
        estimate = self._estimate(logits, axes)
        return self._outputs(self._smooth(estimate, gate, torch.zeros_like(estimate[:, 0])))

    def forward_sequence(self, inputs: TensorDict, noise: Tensor) -> TensorDict:
        """The smoothed estimate for every step of whole sequences, as `step` gives it step by step."""
        every = self.estimates(inputs)
        return {k: v[:, self.estimates_per_step - 1 :: self.estimates_per_step] for k, v in every.items()}

    def as_applied(self, every: TensorDict) -> TensorDict:
        """Per face frame, from `estimates`, the one the server applies to it: the newest whole step's
        (the last of each group of `estimates_per_step`), neutral before the first step."""
        n = next(iter(every.values())).shape[1]
        k = self.estimates_per_step
        index = torch.arange(1, n + 1) // k * k - 1
        applied = {name: v[:, index.clamp(min=0)] for name, v in every.items()}
        before = index < 0
        applied["emotion"][:, before] = torch.eye(N_EMOTIONS)[NEUTRAL]
        applied["arousal_valence"][:, before] = 0.0
        return applied


def offline_frames(pcm: np.ndarray, rate_hz: int, pitch: bool) -> np.ndarray:
    """(n, width) float32 frames of a whole signal as a stream gives them: log-mel, then pitch if asked."""
    mel = LogMelFrontEnd(rate_hz).offline(pcm)
    if not pitch:
        return mel
    return np.concatenate([mel, pitch_frames(model_rate(pcm, rate_hz), mel.shape[0])], axis=1)


def silent_frames(n: int, width: int) -> np.ndarray:
    """(n, width) frames of silence: the log-mel floor, no pitch."""
    frames = np.zeros((n, width), np.float32)
    frames[:, :N_MELS] = SILENT_LOG_MEL
    return frames


def load_voice_emotion(path: Path | None = None) -> tuple[VoiceEmotion, dict[str, Any]]:
    """The estimator from a checkpoint (the shipped one by default), in eval mode, and its metadata."""
    from emostream.runtime.assets import default_voice_emotion_checkpoint

    checkpoint = torch.load(path or default_voice_emotion_checkpoint(), map_location="cpu", weights_only=False)
    model = VoiceEmotion(**checkpoint["config"])
    state = checkpoint["state_dict"]
    if "gru.weight_ih_l0" in state:  # a checkpoint from before the readers (one, at the top level)
        state = {(f"readers.0.{k}" if k.split(".")[0] in ("encode", "gru", "head") else k): v for k, v in state.items()}
    model.load_state_dict(state)
    return model.eval(), checkpoint["metadata"]
