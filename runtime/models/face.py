"""The face generator: live speech to ARKit-52 + head + eyes at 60 fps by few-step flow matching.

Per step (one output frame) it takes two log-mel frames and the emotion weights, and returns one face
frame. Inside: a causal dilated-convolution audio encoder (conv caches), a ring buffer of the last D + 1
encodings so a frame can see D frames of future audio, a ring buffer of the frames it already produced
(history), and a conditional velocity network integrated with Euler steps from the noise input
(flow matching, Lipman et al. 2023, "Flow Matching for Generative Modeling").

Lookahead is set per instance in feature frames (8.33 ms each), 0 to 12 (100 ms): `FaceGenerator(cfg,
lookahead=7)` waits 58.3 ms. The same weights serve every lookahead: training draws it at random and the
network gets it as an input. Timing: step s consumes feature frames [2s - q, 2s - q + 2) with q = 1 or 2
(the stream is prefixed by q frames of silence), so its newest audio ends at (2s - q + 2) / 120 s; it
emits frame k = s - D, which stands for time k / 60 s. Lookahead = 2D + 2 - q feature frames.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, replace
from typing import Any, cast

import torch
from torch import Tensor, nn

from emostream.runtime.audio import LOG_FLOOR, N_MELS, telephone_band_gain
from emostream.runtime.controls import FEATURE_MS, MAX_LOOKAHEAD
from emostream.runtime.layers import CausalConv1d, encode_step, push_ring, residual_convs
from emostream.runtime.models.flow import TIME_FEATURES, FlowMatching
from emostream.runtime.protocol import EMOTIONS
from emostream.runtime.rigs import ARKIT_BLENDSHAPES, FACE_CHANNELS, FACE_REGION_CHANNELS
from emostream.runtime.step import (
    StepSpec,
    StreamingGenerator,
    TensorDict,
    TensorSpec,
    apply_reset,
    keep_inactive,
    zero_inactive,
)

N_EMOTIONS = 8
NEUTRAL = EMOTIONS.index("neutral")  # in the emotion input
LOWER_FACE_NOISE = 1.0  # sampling temperature of the lower face, relative to the rest
HISTORY_BOUND = 5.0  # produced frames are clamped to +-5 standard deviations (normalised units)
# The audio-only closure head's logit is scaled by this before the sigmoid: a confident closure seals the
# lips whole (a partly applied one leaves an emotion's raised upper lip open), a doubtful one stays small.
CLOSURE_SHARPNESS = 2.0
# The viseme head's posterior is sharpened by this before it mixes the templates (VisemeTemplates): 1 mixes
# them as likely as the classifier finds them, larger picks the likeliest.
LIP_SHARPNESS = 2.0
CLOSURE_PASS = "closure_"  # prefix of the state of the closure head's own encoder pass


@dataclass(frozen=True)
class FaceConfig:
    """Architecture; saved inside the checkpoint and rebuilt from it."""

    n_mels: int = N_MELS  # features per input frame
    channels: int = 128  # audio encoder width
    kernel_size: int = 3  # of each causal convolution
    dilations: tuple[int, ...] = (1, 2, 4, 8, 1)  # receptive field: 31 frames (0.5 s) of past audio
    history_frames: int = 4  # produced frames fed back as context
    hidden: int = 256  # velocity network width
    n_channels: int = len(FACE_CHANNELS)  # output channels per frame
    one_step: bool = False  # carries a one-step sampler distilled from the two-step one (training/distil_face.py)
    audio_closure: bool = False  # the closure head hears the audio window alone (training/audio_closure.py)
    closure_telephone_band: bool = False  # ... and only the band an 8 kHz call carries (a second encoder pass)
    audio_opening: bool = False  # a head for how far the lips are open at least (training/audio_opening.py)
    lip_shapes: tuple[str, ...] = ()  # channels a lip-shape head sets from audio and emotion (training/lip_shape.py)
    lip_visemes: int = 0  # > 0: that head names the viseme (of this many) and sets its templates' shapes

    def __post_init__(self) -> None:
        if min(self.n_mels, self.channels, self.kernel_size, self.history_frames, self.hidden) < 1:
            raise ValueError(f"FaceConfig sizes must be positive: {self}")

    @staticmethod
    def from_dict(d: dict[str, Any]) -> FaceConfig:
        return FaceConfig(**{**d, "dilations": tuple(d["dilations"]), "lip_shapes": tuple(d.get("lip_shapes", ()))})


def lookahead_timing(lookahead: int) -> tuple[int, int]:
    """(delay D in output frames, silent prefix q in feature frames) for a lookahead in feature frames."""
    if not 0 <= lookahead <= MAX_LOOKAHEAD:
        raise ValueError(f"lookahead must be 0..{MAX_LOOKAHEAD} feature frames, got {lookahead}")
    return lookahead // 2, 2 - lookahead % 2


class FaceNetwork(FlowMatching, nn.Module):
    """The weights, shared by every lookahead and step count: encoder, conditioning, velocity field."""

    lip_placement: Tensor  # (len(lip_shapes), n_channels) one-hot: the channels the lip-shape head sets
    lip_unplaced: Tensor  # (n_channels,) 1 where it sets none
    neutral_emotion: Tensor  # (8,) the emotion input of neutral at full intensity
    feature_mean: Tensor  # (n_mels,) input normalisation, fitted on the training set
    feature_std: Tensor
    telephone_gain: Tensor  # (n_mels,) power each mel band keeps in the telephone band (runtime/audio.py)
    face_mean: Tensor  # (n_channels,) output normalisation
    face_std: Tensor

    def __init__(self, config: FaceConfig) -> None:
        super().__init__()
        c = self.config = config
        self.register_buffer("feature_mean", torch.zeros(c.n_mels))
        self.register_buffer("feature_std", torch.ones(c.n_mels))
        self.register_buffer("face_mean", torch.zeros(c.n_channels))
        self.register_buffer("face_std", torch.ones(c.n_channels))
        self.register_buffer("telephone_gain", torch.from_numpy(telephone_band_gain()), persistent=False)
        self.project = nn.Linear(2 * c.n_mels, c.channels)
        self.convs = nn.ModuleList(CausalConv1d(c.channels, c.channels, c.kernel_size, d) for d in c.dilations)
        max_delay = lookahead_timing(MAX_LOOKAHEAD)[0]
        self.window = max_delay + 1  # encodings a frame sees: its own and up to max_delay future ones
        self.audio_context = nn.Linear(self.window * c.channels, c.hidden)
        self.emotion = nn.Linear(N_EMOTIONS, c.hidden)
        self.lookahead = nn.Embedding(MAX_LOOKAHEAD + 1, c.hidden)
        self.history = nn.Linear(c.history_frames * c.n_channels, c.hidden)
        self.x_in = nn.Linear(c.n_channels, c.hidden)
        self.t_in = nn.Linear(TIME_FEATURES, c.hidden)
        self.blocks = nn.ModuleList(nn.Linear(c.hidden, c.hidden) for _ in range(2))
        self.out = nn.Linear(c.hidden, c.n_channels)
        # Bilabial closure is an event, not an average: a deterministic head predicts it from the audio so
        # the lips close sharply whatever the sampler does (applied last, as in the teacher).
        self.closure = nn.Linear(c.hidden, 1)
        # The same decision from the audio alone: neither the emotion nor the model's own history can talk
        # it out of a closure (the head above, which hears both, closes fewer bilabials in some emotions).
        self.audio_closure = (
            nn.Sequential(nn.Linear(self.window * c.channels, c.hidden), nn.SiLU(), nn.Linear(c.hidden, 1))
            if c.audio_closure
            else None
        )
        # The least lip gap the audio allows (the median of the teacher's): a voiced open vowel is not
        # made with closed lips, whatever the sampler drew (training/audio_opening.py).
        self.audio_opening = (
            nn.Sequential(nn.Linear(self.window * c.channels, c.hidden), nn.SiLU(), nn.Linear(c.hidden, 1))
            if c.audio_opening
            else None
        )
        # The lips' shapes (rounding, tuck, spread: LIP_SHAPES), which the sampler draws too faint: from the
        # audio and the emotion, not the history, whose unrounded past talks the sampler out of rounding
        # (training/lip_shape.py).
        # With `lip_visemes` it names the viseme instead and sets the shapes of its templates (VisemeTemplates).
        lip_inputs = self.window * c.channels + N_EMOTIONS
        self.lip_shape: nn.Module | None = None
        if c.lip_shapes and c.lip_visemes:
            self.lip_shape = VisemeTemplates(lip_inputs, c.hidden, c.lip_visemes, len(c.lip_shapes))
        elif c.lip_shapes:
            shapes = len(c.lip_shapes)
            self.lip_shape = nn.Sequential(nn.Linear(lip_inputs, c.hidden), nn.SiLU(), nn.Linear(c.hidden, shapes))
        # Where its outputs go: a one-hot row per channel (not saved; moves to the device with the module).
        placement = torch.zeros(len(c.lip_shapes), c.n_channels)
        placement[range(len(c.lip_shapes)), [_CH[name] for name in c.lip_shapes]] = 1.0
        self.register_buffer("lip_placement", placement, persistent=False)
        self.register_buffer("lip_unplaced", 1 - placement.sum(0), persistent=False)  # the channels it leaves
        self.register_buffer("neutral_emotion", torch.eye(N_EMOTIONS)[NEUTRAL], persistent=False)
        self.one_step = OneStepSampler(c.n_channels, c.hidden) if c.one_step else None

    @property
    def conv_layers(self) -> list[CausalConv1d]:
        return [cast(CausalConv1d, conv) for conv in self.convs]

    def encode_pairs(self, features: Tensor) -> Tensor:
        """(B, M, 2, n_mels) raw log-mel pairs -> (B, M, C) projected, before the convolutions."""
        B, M = features.shape[:2]
        x = (features - self.feature_mean) / self.feature_std
        return self.project(x.reshape(B, M, -1))

    def telephone_band(self, features: Tensor) -> Tensor:
        """(..., n_mels) raw log-mel -> the same frames as the band below 4 kHz alone would give them (each
        band's power times its `telephone_gain`): what the closure head hears where the config says so.
        Real voices above 4 kHz (fricative and breath noise, the microphone) differ most from the TTS voices
        trained on, and misled the head there (docs/real-voices.md)."""
        power = (features.exp() - LOG_FLOOR).clamp(min=0.0)
        return torch.log(power * self.telephone_gain + LOG_FLOOR)

    def closure_features(self, features: Tensor) -> Tensor | None:
        """The features the closure head's own encoder pass hears, or None where it shares the main one."""
        return self.telephone_band(features) if self.config.closure_telephone_band else None

    def encode_sequence(self, features: Tensor) -> Tensor:
        """(B, M, 2, n_mels) -> (B, M, C): the whole causal encoder at once (training path)."""
        h = self.encode_pairs(features).transpose(1, 2)  # (B, C, M)
        return residual_convs(self.conv_layers, h).transpose(1, 2)

    def condition(self, window: Tensor, emotion: Tensor, lookahead: Tensor, history: Tensor) -> Tensor:
        """window (B, W, C) zero-padded future encodings; emotion (B, 8); lookahead (B,) long;
        history (B, N, n_channels) normalised -> (B, hidden)."""
        return nn.functional.silu(
            self.audio_context(window.flatten(1))
            + self.emotion(emotion)
            + self.lookahead(lookahead)
            + self.history(history.flatten(1))
        )

    def sample(self, noise: Tensor, cond: Tensor, time_terms: Tensor) -> Tensor:
        """Euler integration of the flow (see `integrate`), or the distilled sampler where one step is asked
        and the network has one; then bounded: the result feeds the history, so one wild frame must not grow
        into a runaway (or a NaN that would never leave the state)."""
        if self.one_step is not None and time_terms.shape[0] == 1:
            x = self.one_step(noise, cond)
        else:
            x = self.integrate(noise, cond, time_terms)
        return torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0).clamp(-HISTORY_BOUND, HISTORY_BOUND)

    def closure_probability(self, cond: Tensor, window: Tensor) -> Tensor:
        """(B, hidden) condition and (B, W, C) audio window -> (B,) how closed the lips should be held for a
        bilabial in this frame: from the audio alone where the network has that head."""
        if self.audio_closure is not None:
            return torch.sigmoid(CLOSURE_SHARPNESS * self.audio_closure(window.flatten(1))[:, 0])
        return torch.sigmoid(self.closure(cond)[:, 0])

    def least_gap(self, window: Tensor) -> Tensor:
        """(B, W, C) audio window -> (B,) the lip gap the frame should have at least (`lip_gap` units)."""
        assert self.audio_opening is not None
        return nn.functional.softplus(self.audio_opening(window.flatten(1))[:, 0])

    def lip_shapes(self, window: Tensor, emotion: Tensor, closure: Tensor | None = None) -> Tensor:
        """(B, W, C) audio window and (B, 8) emotion -> (B, len(config.lip_shapes)) weights in [0, 1].

        With `closure` (B,), the shapes lean by it toward those the same audio gets in neutral (the
        emotion's weight moved onto neutral): a bilabial is made alike in every emotion, so an emotion's
        raised upper lip (disgusted) or parted lips do not hold a likely closure open. Neutral itself is
        left exactly as it was. The first layer is linear, so the neutral reading costs one emotion
        product and the second layer once more."""
        assert self.lip_shape is not None
        templates = self.lip_shape if isinstance(self.lip_shape, VisemeTemplates) else None
        layers = cast(nn.Sequential, templates.classify if templates is not None else self.lip_shape)
        first, activation, second = cast(tuple[nn.Linear, nn.Module, nn.Linear], tuple(layers))

        def shaped(out: Tensor, emotion: Tensor) -> Tensor:
            return out if templates is None else templates.shapes(out, emotion)

        hidden = first(torch.cat([window.flatten(1), emotion], dim=1))
        shapes = shaped(second(activation(hidden)), emotion)
        if closure is not None:
            # The first layer's input with the emotion's whole weight on neutral instead: its emotion
            # columns' product changes by sum(emotion) times neutral's column less the emotion's own.
            emotion_columns = first.weight[:, -N_EMOTIONS:]
            weight = emotion.sum(dim=1, keepdim=True)
            moved = weight * emotion_columns[:, NEUTRAL] - emotion @ emotion_columns.T
            in_neutral = shaped(second(activation(hidden + moved)), weight * self.neutral_emotion)
            shapes = shapes + closure[:, None] * (in_neutral - shapes)
        return shapes.clamp(0.0, 1.0)

    def finish(self, x: Tensor, cond: Tensor, window: Tensor, emotion: Tensor, closure_window: Tensor) -> Tensor:
        """A sampled frame (normalised) to face units with the deterministic heads applied: first the lips
        shaped (rounding, tuck, spread; toward neutral's shapes by the closure's probability), then opened
        to the least gap by what the closure's probability leaves of it, then closed for a bilabial (a
        closure overrides an opening). `closure_window` is what the closure head hears: `window`, or the
        encodings of its own pass (`closure_features`)."""
        face = self.denormalize(x)
        closure = self.closure_probability(cond, closure_window)
        if self.lip_shape is not None:
            face = face * self.lip_unplaced + self.lip_shapes(window, emotion, closure) @ self.lip_placement
        if self.audio_opening is not None:
            face = apply_opening(face, self.least_gap(window) * (1 - closure))
        return apply_closure(face, closure)

    def denormalize(self, x: Tensor) -> Tensor:
        """Normalised frames (..., n_channels) to face units, blendshapes clipped to [0, 1]."""
        y = x * self.face_std + self.face_mean
        n = len(ARKIT_BLENDSHAPES)
        return torch.cat([y[..., :n].clamp(0.0, 1.0), y[..., n:]], dim=-1)


class VisemeTemplates(nn.Module):
    """The lip-shape head that names the viseme: a classifier of the audio window and the emotion (its
    logits trained by cross-entropy on the teacher's viseme of each frame) whose posterior, sharpened by
    LIP_SHARPNESS, mixes one template of lip shapes per viseme, scaled and offset per emotion (the
    teacher's articulation). Where the audio leaves a shape in doubt, a regression of the shapes averages
    the candidates into a mouth that is none of them, which a lip-reader cannot read; the sharpened
    posterior makes the likeliest one instead (docs/real-voices.md)."""

    def __init__(self, inputs: int, hidden: int, n_visemes: int, n_shapes: int) -> None:
        super().__init__()
        self.classify = nn.Sequential(nn.Linear(inputs, hidden), nn.SiLU(), nn.Linear(hidden, n_visemes))
        self.templates = nn.Parameter(torch.zeros(n_visemes, n_shapes))
        self.emotion_gain = nn.Parameter(torch.zeros(N_EMOTIONS, n_shapes))
        self.emotion_offset = nn.Parameter(torch.zeros(N_EMOTIONS, n_shapes))

    def shapes(self, logits: Tensor, emotion: Tensor, sharpness: float = LIP_SHARPNESS) -> Tensor:
        """(B, n_visemes) logits and (B, 8) emotion -> (B, n_shapes) lip shapes, unclamped."""
        return self.mix(torch.softmax(logits * sharpness, dim=-1), emotion)

    def mix(self, posterior: Tensor, emotion: Tensor) -> Tensor:
        """(B, n_visemes) viseme weights and (B, 8) emotion -> (B, n_shapes) lip shapes, unclamped."""
        return (posterior @ self.templates) * (1 + emotion @ self.emotion_gain) + emotion @ self.emotion_offset


class OneStepSampler(nn.Module):
    """Noise and condition to a sample in one network evaluation, distilled from the two-step Euler sampler
    (same noise in, same sample out). One Euler step from noise lands on the conditional mean, which mixes
    open and closed mouths into a half-open gape; the distilled map keeps the two-step sampler's sharp
    choices. It has the velocity field's shape and starts as its one-step Euler sampler (`start_from`)."""

    def __init__(self, n_channels: int, hidden: int) -> None:
        super().__init__()
        self.x_in = nn.Linear(n_channels, hidden)
        self.time = nn.Parameter(torch.zeros(hidden))  # takes the place of the flow time's term
        self.blocks = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(2))
        self.out = nn.Linear(hidden, n_channels)

    def start_from(self, network: FaceNetwork) -> None:
        """Copies the velocity field's weights and its term for t = 0: one Euler step, before distillation."""
        with torch.no_grad():
            pairs = [(self.x_in, network.x_in), (self.out, network.out)]
            for mine, theirs in [*pairs, *zip(self.blocks, network.blocks, strict=True)]:
                mine.load_state_dict(theirs.state_dict())
            self.time.copy_(network.sampler_time_terms(1)[0])

    def forward(self, noise: Tensor, cond: Tensor) -> Tensor:
        h = nn.functional.silu(self.x_in(noise) + self.time + cond)
        for block in self.blocks:
            h = h + nn.functional.silu(block(h))
        return noise + self.out(h)


_CH = {name: i for i, name in enumerate(FACE_CHANNELS)}
# The viseme shapes of the lips other than the jaw's opening and a bilabial's press: rounding (oh, ou, CH,
# RR), the lower lip's tuck (FF), the lips' spread (E, ih) and parting, the tongue (TH). The lip-shape head
# sets them (FaceNetwork.lip_shapes; training/lip_shape.py trains it on these).
LIP_SHAPES = (
    "mouthFunnel", "mouthPucker", "mouthRollLower", "mouthShrugUpper", "mouthUpperUpLeft", "mouthUpperUpRight",
    "mouthLowerDownLeft", "mouthLowerDownRight", "mouthStretchLeft", "mouthStretchRight", "tongueOut",
)  # fmt: skip
LIP_OPENERS = ("mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight", "mouthFunnel")


def lip_gap(face: Any) -> Any:
    """(..., n_channels) face units (NumPy or torch) -> (...) lip gap: max(0, jawOpen - mouthClose)
    + 0.5 mean(lowerDown) + 0.5 mean(upperUp) + 0.3 funnel. Closed below 0.1 (training/metrics.py)."""
    f = face
    return (
        (f[..., _CH["jawOpen"]] - f[..., _CH["mouthClose"]]).clip(min=0.0)
        + 0.5 * (f[..., _CH["mouthLowerDownLeft"]] + f[..., _CH["mouthLowerDownRight"]]) / 2
        + 0.5 * (f[..., _CH["mouthUpperUpLeft"]] + f[..., _CH["mouthUpperUpRight"]]) / 2
        + 0.3 * f[..., _CH["mouthFunnel"]]
    )


OPENING_RAMP = 0.02  # lip-gap units over which a sealed mouth's mouthClose yields to an opening


def apply_opening(face: Tensor, least: Tensor) -> Tensor:
    """Opens the lips to a gap of at least `least` (...,): what is missing goes onto jawOpen, and
    mouthClose comes down to the jaw (a sealed mouth's jaw can drop without parting the lips otherwise)."""
    missing = (least - lip_gap(face)).clamp(min=0.0)[..., None]
    jaw = face[..., _CH["jawOpen"] : _CH["jawOpen"] + 1]
    close = face[..., _CH["mouthClose"] : _CH["mouthClose"] + 1]
    # mouthClose above the jaw comes down to it over the first OPENING_RAMP of what is missing, not at
    # once: a frame must be continuous in its inputs (a jump here is a visible pop, and ONNX rounding a
    # hair away from eager flipped it).
    close = close - (close - jaw).clamp(min=0.0) * (missing / OPENING_RAMP).clamp(max=1.0)
    parts = [face[..., : _CH["jawOpen"]], (jaw + missing).clamp(max=1.0), close, face[..., _CH["mouthClose"] + 1 :]]
    return torch.cat(parts, dim=-1)


def _lip_openers(face: Tensor) -> Tensor:
    """(n_channels,) bool, true at the lip openers. Made from an arange on `face`'s device each call: a
    module-level mask would stay on the CPU, which a step on a GPU cannot mix in (nor copy inside a
    captured CUDA graph)."""
    channel = torch.arange(face.shape[-1], device=face.device)
    return functools.reduce(torch.logical_or, [channel == _CH[name] for name in LIP_OPENERS])


def apply_closure(face: Tensor, closure: Tensor) -> Tensor:
    """Closes the lips by `closure` in [0, 1]: (..., n_channels) face units, (...) weights.

    Lip openers fade, the jaw rises a little and mouthClose takes up the rest of the jaw opening, so the
    lip gap reaches zero at closure 1 while the jaw may stay slightly open. The teacher uses the same rule.
    """
    w = closure[..., None]
    face = torch.where(_lip_openers(face), face * (1 - w), face)
    jaw = face[..., _CH["jawOpen"] : _CH["jawOpen"] + 1] * (1 - 0.6 * w)
    close = torch.maximum(face[..., _CH["mouthClose"] : _CH["mouthClose"] + 1], w * jaw)
    press = face[..., _CH["mouthPressLeft"] : _CH["mouthPressRight"] + 1] + 0.25 * w
    parts = [
        face[..., : _CH["jawOpen"]], jaw, close, face[..., _CH["mouthClose"] + 1 : _CH["mouthPressLeft"]],
        press.clamp(max=1.0), face[..., _CH["mouthPressRight"] + 1 :],
    ]  # fmt: skip
    return torch.cat(parts, dim=-1)


def pad_window(encodings: Tensor, window: int) -> Tensor:
    """(B, D + 1, C) -> (B, window, C): the unused future slots are zeros, as in training."""
    B, n, C = encodings.shape
    return torch.cat([encodings, encodings.new_zeros(B, window - n, C)], dim=1)


class FaceGenerator(StreamingGenerator):
    """The step function around a FaceNetwork, for one lookahead and one number of sampler steps."""

    lookahead_index: Tensor
    time_terms: Tensor  # (n_steps, hidden): the sampler's time inputs, fixed for a trained network

    noise_scale: Tensor  # (n_channels,): how much of the noise input each channel's sample starts from

    def __init__(
        self, network: FaceNetwork, lookahead: int = 7, n_steps: int = 2, lower_face_noise: float = LOWER_FACE_NOISE,
        masks: bool = True,
    ) -> None:  # fmt: skip
        super().__init__()
        self.masks = masks
        if not 1 <= n_steps <= 8:
            raise ValueError(f"sampler steps must be 1..8, got {n_steps}")
        # Lips should follow the audio, not the dice: the lower face starts closer to the conditional mean
        # (a lower sampling temperature), while brows, blinks, eyes and head keep the full spread.
        scale = torch.ones(network.config.n_channels)
        scale[[_CH[n] for n in FACE_REGION_CHANNELS["lower"]]] = lower_face_noise
        self.register_buffer("noise_scale", scale, persistent=False)
        self.network = network
        self.lookahead_frames = lookahead
        self.n_steps = n_steps
        self.delay, self.prefix = lookahead_timing(lookahead)
        c = network.config
        self.register_buffer("lookahead_index", torch.tensor(lookahead), persistent=False)
        with torch.no_grad():  # constant per generator: the network is frozen once it serves
            self.register_buffer("time_terms", network.sampler_time_terms(n_steps), persistent=False)
        passes = ("", CLOSURE_PASS) if c.closure_telephone_band else ("",)
        encoders = tuple(
            spec
            for p in passes
            for spec in (
                *(TensorSpec(f"{p}conv{i}", (c.channels, conv.context)) for i, conv in enumerate(network.conv_layers)),
                TensorSpec(f"{p}encoded", (self.delay + 1, c.channels)),
            )
        )
        self.spec = StepSpec(
            inputs=(TensorSpec("features", (2, c.n_mels)), TensorSpec("emotion", (1, N_EMOTIONS))),
            state=encoders
            + (
                TensorSpec("history", (c.history_frames, c.n_channels)),
                TensorSpec("warmed", (1,)),
            ),
            noise=TensorSpec("noise", (c.n_channels,)),
            outputs=(TensorSpec("face", (1, c.n_channels)),),
            inputs_per_step=2,
            frames_per_step=1,
            delay_frames=self.delay,
            lookahead_inputs=2 * self.delay,
        )

    @property
    def engine_name(self) -> str:
        return f"face-lookahead{self.lookahead_frames}-steps{self.n_steps}" + ("" if self.masks else "-compact")

    def extra_repr(self) -> str:
        return f"lookahead={self.lookahead_frames}, n_steps={self.n_steps}, masks={self.masks}"

    @property
    def lookahead_ms(self) -> float:
        return self.lookahead_frames * FEATURE_MS

    def step(
        self, inputs: TensorDict, state: TensorDict, noise: Tensor, reset: Tensor, active: Tensor
    ) -> tuple[TensorDict, TensorDict]:
        net = self.network
        B = reset.shape[0]
        if self.masks:
            state = apply_reset(state, self.init_state(B, reset.device), reset)
        # (B, D + 1, C): frame k's own encoding .. k + D
        encoded, new_state = encode_step(net.conv_layers, net.encode_pairs(inputs["features"][:, None]), state)
        window = closure_window = pad_window(encoded, net.window)
        heard = net.closure_features(inputs["features"])
        if heard is not None:  # the closure head's own pass over the same encoder
            closure_encoded, closure_state = encode_step(
                net.conv_layers, net.encode_pairs(heard[:, None]), state, CLOSURE_PASS
            )
            closure_window = pad_window(closure_encoded, net.window)
            new_state |= closure_state | {f"{CLOSURE_PASS}encoded": closure_encoded}
        lookahead = self.lookahead_index.expand(B)
        cond = net.condition(window, inputs["emotion"][:, 0], lookahead, state["history"])
        x = net.sample(noise * self.noise_scale, cond, self.time_terms)  # (B, n_channels), normalised
        face = net.finish(x, cond, window, inputs["emotion"][:, 0], closure_window)
        warm = (state["warmed"] >= self.delay).reshape(B, 1, 1)
        new_state |= {
            "encoded": encoded,
            "history": torch.where(warm, push_ring(state["history"], x[:, None]), state["history"]),
            "warmed": torch.clamp(state["warmed"] + 1, max=float(self.delay)),
        }
        if not self.masks:
            return {"face": face[:, None]}, new_state
        return zero_inactive({"face": face[:, None]}, active), keep_inactive(new_state, state, active)

    def forward_sequence(self, inputs: TensorDict, noise: Tensor) -> TensorDict:
        net = self.network
        features = inputs["features"]  # (B, 2S, n_mels)
        B, T_in, n_mels = features.shape
        S = T_in // 2
        encoded = closure_encoded = net.encode_sequence(features.reshape(B, S, 2, n_mels))  # (B, S, C)
        heard = net.closure_features(features)
        if heard is not None:
            closure_encoded = net.encode_sequence(heard.reshape(B, S, 2, n_mels))
        history = features.new_zeros(B, net.config.history_frames, net.config.n_channels)
        lookahead = self.lookahead_index.expand(B)
        frames = []
        for k in range(S - self.delay):
            window = pad_window(encoded[:, k : k + self.delay + 1], net.window)
            emotion = inputs["emotion"][:, k + self.delay]
            cond = net.condition(window, emotion, lookahead, history)
            x = net.sample(noise[:, k + self.delay] * self.noise_scale, cond, self.time_terms)
            history = push_ring(history, x[:, None])
            closure_window = pad_window(closure_encoded[:, k : k + self.delay + 1], net.window)
            frames.append(net.finish(x, cond, window, emotion, closure_window))
        return {"face": torch.stack(frames, dim=1)}


def save_checkpoint(path: Any, network: FaceNetwork, metadata: dict[str, Any]) -> None:
    """Weights, architecture config, rig and training metadata in one file."""
    torch.save(
        {
            "kind": "emostream-face",
            "config": asdict(network.config),
            "rig": list(FACE_CHANNELS),
            "state_dict": network.state_dict(),
            "metadata": metadata,
        },
        path,
    )


def load_checkpoint(path: Any) -> tuple[FaceNetwork, dict[str, Any]]:
    """Rebuilds the network from its own config; refuses a checkpoint for another rig."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if blob.get("kind") != "emostream-face" or blob.get("rig") != list(FACE_CHANNELS):
        raise ValueError(f"{path} is not a face checkpoint for this rig")
    network = FaceNetwork(FaceConfig.from_dict(blob["config"]))
    network.load_state_dict(blob["state_dict"])
    return network.eval(), blob["metadata"]


def with_closure_band(network: FaceNetwork, telephone: bool) -> FaceNetwork:
    """The same weights with the closure head hearing the telephone band (its own encoder pass) or the main
    pass's whole band: what the benchmarks compare."""
    out = FaceNetwork(replace(network.config, closure_telephone_band=telephone))
    out.load_state_dict(network.state_dict())
    return out.eval()
