"""The gesture generator: live speech to SMPL-X trunk, arms and hands at 30 fps by few-step latent diffusion.

Per step (one body frame, 33.3 ms) it takes four log-mel frames, the emotion weights and a style
embedding, and returns one pose (runtime/body_pose.py: 6D rotations and the root translation). Inside:

- a causal dilated-convolution audio encoder (conv caches) and a ring buffer of the last D + 1 encodings,
  so a frame sees D = 5 frames of future audio: its audio ends 200 ms after the frame's media time;
- a motion latent: a small VAE whose encoder reads a short window of poses (the frame and the three
  before it) and whose decoder turns a latent back into the frame's pose. The decoder does not see the
  previous pose, so errors cannot pile up frame after frame; the latent carries the motion of the window.
  Training fits it first; the diffusion then works in its 32-dimensional latent instead of the 285 pose
  features;
- an emotion posture: a linear map from the emotion weights to a posture offset, fitted to the training
  poses by least squares. The VAE, the flow and the history work on the pose minus that offset, and the
  output adds it back, so an emotion's posture is set by the control, not by what the history drifted to;
- flow matching in that latent (Lipman et al. 2023) with 1 to 4 Euler steps, conditioned on the audio
  window, emotion, style and the recent poses (history). The noise input is low-passed in the state
  (an AR(1) process with unit variance), so neighbouring frames draw related samples and seeds change
  the motion without making it jitter;
- a style encoder (AMUSE's idea, made causal-friendly): a 4 to 10 s reference motion clip becomes a
  16-dimensional embedding; the checkpoint also holds one preset embedding per teacher style;
- classifier-free guidance on the emotion (Ho and Salimans 2022): training replaces the emotion term of
  some frames by a learned null emotion, so each Euler step can also ask what the same audio, style and
  history predict without the emotion, and push the velocity away from that, by the guidance weight.
  Only the emotion is guided: guiding audio, emotion and style together made the motion fast and
  jittery and lost the emotion (docs/gestures.md). Both halves run as one batch of twice the size.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from emostream.runtime.audio import N_MELS
from emostream.runtime.body_pose import GESTURE_JOINTS, N_POSE_FEATURES, pose_features
from emostream.runtime.errors import ConfigError
from emostream.runtime.layers import CausalConv1d, encode_step, push_ring, residual_convs
from emostream.runtime.models.face import N_EMOTIONS
from emostream.runtime.models.flow import TIME_FEATURES, FlowMatching
from emostream.runtime.models.pose_wire import pose_to_wire
from emostream.runtime.motion_files import load_motion
from emostream.runtime.protocol import EMOTIONS
from emostream.runtime.rigs import BODY_CHANNELS, SMPLX_JOINTS
from emostream.runtime.step import (
    StepSpec,
    StreamingGenerator,
    TensorDict,
    TensorSpec,
    apply_reset,
    keep_inactive,
    zero_inactive,
)

FEATURES_PER_FRAME = 4  # 120 Hz log-mel frames per 30 fps body frame
POSE_BOUND = 6.0  # produced poses are clamped to +-6 standard deviations (normalised units)
DEFAULT_TEMPERATURE = 0.6  # noise scale at sampling (docs/gestures.md: chosen on held-out voices)
DEFAULT_SMOOTHING = 1.0  # weight of the new pose in the output's one-pole low-pass (1: none; docs/gestures.md)
DEFAULT_GUIDANCE = 1.0  # no guidance unless the checkpoint carries one (docs/gestures.md)
STYLE_CLIP_FRAMES = (120, 300)  # a style reference clip: 4 to 10 s at 30 fps


@dataclass(frozen=True)
class GestureConfig:
    """Architecture; saved inside the checkpoint and rebuilt from it."""

    n_mels: int = N_MELS
    channels: int = 128  # audio encoder width
    kernel_size: int = 3
    dilations: tuple[int, ...] = (1, 2, 4, 8)  # receptive field: 31 frames (1 s) of past audio
    lookahead_frames: int = 5  # future frames of audio each frame waits for (D)
    history_frames: int = 8  # produced poses fed back as context
    # How far back each history pose is (1: the frame before), oldest first; empty: the last
    # history_frames. Sparse lags look further back at the same input size (the state keeps the span).
    history_lags: tuple[int, ...] = ()
    vae_window: int = 4  # poses the VAE encoder reads per latent
    latent: int = 32
    hidden: int = 256
    style_dim: int = 16
    n_pose: int = N_POSE_FEATURES
    noise_correlation: float = 0.8  # AR(1) coefficient of the noise between frames
    # Share of training frames whose emotion gives way to the learned null emotion; above 0, the network
    # has one and its generators can use classifier-free guidance on the emotion.
    emotion_dropout: float = 0.0
    emotion_posture: bool = False  # poses are modelled as a residual from the emotion's posture offset
    # The emotion also scales and shifts the flow's hidden units after each block (FiLM, Perez et al.
    # 2018), on top of its additive term in the condition. Zero at initialisation: a network resumed with
    # it starts as it was.
    emotion_film: bool = False
    # The network carries a sampling temperature per emotion, fitted after training on training voices
    # (training/gesture_temperature.py); without it, one temperature for all.
    emotion_temperature: bool = False
    # The classifier-free guidance weight on the emotion that generators sample with unless told otherwise
    # (1: none). A sampling setting, like the temperatures, and fitted with them (--guidance).
    guidance: float = DEFAULT_GUIDANCE
    # A phrase plan per arm: each frame the network draws, for each arm, which of `plan_codes` phrase
    # kinds it is in (at rest, a beat, a point, ...; the teacher's labels, teacher_gesture.PLAN_CODES)
    # from the audio, emotion, style, history and the arm's last plan, and the flow follows that plan.
    # 0: no plan, as in the shipped model. Meant to make which hand strikes, and with what shape, an
    # explicit choice rather than the noise's, which the low sampling temperatures mostly take away; it
    # has not read better yet (docs/gestures.md, "What was tried").
    plan_codes: int = 0

    def __post_init__(self) -> None:
        sizes = (self.channels, self.kernel_size, self.history_frames, self.latent, self.hidden, self.style_dim)
        if min(sizes) < 1 or self.plan_codes < 0 or self.plan_codes == 1:
            raise ValueError(f"GestureConfig sizes must be positive (plan_codes 0 or at least 2): {self}")
        if not 0 <= self.emotion_dropout < 1:
            raise ValueError(f"emotion_dropout must be in [0, 1): {self}")
        if not 0 <= self.lookahead_frames <= 6:
            raise ValueError(f"lookahead must be 0..6 frames (at most 200 ms past the frame's end): {self}")
        lags = self.history_lags
        oldest_first = all(a > b for a, b in itertools.pairwise(lags))
        if lags and (len(lags) != self.history_frames or lags[-1] < 1 or not oldest_first):
            raise ValueError(f"history_lags must be history_frames lags >= 1, oldest (largest) first: {self}")
        if self.guidance < 0 or (self.guidance != 1.0 and self.emotion_dropout == 0):
            raise ValueError(f"guidance must be >= 0, and other than 1 only with a null emotion: {self}")

    @property
    def lags(self) -> tuple[int, ...]:
        """How far back each history pose is, oldest first."""
        return self.history_lags or tuple(range(self.history_frames, 0, -1))

    @property
    def plan_size(self) -> int:
        """Width of the plan as the network reads it: both arms' one-hot codes, left then right."""
        return 2 * self.plan_codes

    @property
    def history_span(self) -> int:
        """How many produced poses the history reaches back over (the state's ring of them)."""
        return self.lags[0]

    @staticmethod
    def from_dict(d: dict[str, Any]) -> GestureConfig:
        lags = tuple(d.get("history_lags", ()))  # absent from checkpoints before it
        return GestureConfig(**{**d, "dilations": tuple(d["dilations"]), "history_lags": lags})


def mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                         nn.Linear(hidden, n_out))  # fmt: skip


class MotionVAE(nn.Module):
    """Latent of a short pose window, decoded into the window's last pose."""

    def __init__(self, c: GestureConfig) -> None:
        super().__init__()
        self.encoder = mlp(c.vae_window * c.n_pose, c.hidden, 2 * c.latent)
        self.decoder = mlp(c.latent, c.hidden, c.n_pose)

    def encode(self, window: Tensor) -> tuple[Tensor, Tensor]:
        """(B, W, n_pose) normalised poses, oldest first -> mean and log-variance (B, latent)."""
        mean, log_var = self.encoder(window.flatten(1)).chunk(2, dim=-1)
        return mean, log_var.clamp(-8, 4)

    def decode(self, z: Tensor) -> Tensor:
        """(B, latent) -> (B, n_pose) normalised pose."""
        return self.decoder(z)


class StyleEncoder(nn.Module):
    """A reference motion clip (B, T, n_pose), normalised, any T >= 16 -> style embedding (B, style_dim)."""

    def __init__(self, c: GestureConfig) -> None:
        super().__init__()
        width = 128
        self.convs = nn.Sequential(
            nn.Conv1d(2 * c.n_pose, width, 5, stride=2), nn.SiLU(),
            nn.Conv1d(width, width, 5, stride=2), nn.SiLU(),
            nn.Conv1d(width, width, 5, stride=2), nn.SiLU(),
        )  # fmt: skip
        self.out = nn.Linear(2 * width, c.style_dim)

    def forward(self, clip: Tensor) -> Tensor:
        velocity = torch.diff(clip, dim=1, prepend=clip[:, :1])  # style is as much in motion as in pose
        h = self.convs(torch.cat([clip, velocity], dim=-1).transpose(1, 2))  # (B, width, T')
        return torch.tanh(self.out(torch.cat([h.mean(-1), h.std(-1)], dim=-1)))


class GestureNetwork(FlowMatching, nn.Module):
    """The weights: audio encoder, motion VAE, latent flow, style encoder and the style presets."""

    feature_mean: Tensor
    feature_std: Tensor
    pose_mean: Tensor
    pose_std: Tensor
    latent_mean: Tensor
    latent_std: Tensor
    style_presets: Tensor  # (n_styles, style_dim); names in the checkpoint
    emotion_offsets: Tensor  # (8, n_pose), with config.emotion_posture
    emotion_temperatures: Tensor  # (8,), with config.emotion_temperature
    plan_cumulative: Tensor  # (plan_codes, plan_codes), with a plan

    def __init__(self, config: GestureConfig, n_styles: int = 16) -> None:
        super().__init__()
        c = self.config = config
        self.register_buffer("feature_mean", torch.zeros(c.n_mels))
        self.register_buffer("feature_std", torch.ones(c.n_mels))
        self.register_buffer("pose_mean", torch.zeros(c.n_pose))
        self.register_buffer("pose_std", torch.ones(c.n_pose))
        self.register_buffer("latent_mean", torch.zeros(c.latent))
        self.register_buffer("latent_std", torch.ones(c.latent))
        self.register_buffer("style_presets", torch.zeros(n_styles, c.style_dim))
        self.project = nn.Linear(FEATURES_PER_FRAME * c.n_mels, c.channels)
        self.convs = nn.ModuleList(CausalConv1d(c.channels, c.channels, c.kernel_size, d) for d in c.dilations)
        self.vae = MotionVAE(c)
        self.style_encoder = StyleEncoder(c)
        self.audio_context = nn.Linear((c.lookahead_frames + 1) * c.channels, c.hidden)
        self.emotion = nn.Linear(N_EMOTIONS, c.hidden)
        self.style = nn.Linear(c.style_dim, c.hidden)
        self.history = nn.Linear(c.history_frames * c.n_pose, c.hidden)
        self.x_in = nn.Linear(c.latent, c.hidden)
        self.t_in = nn.Linear(TIME_FEATURES, c.hidden)
        self.blocks = nn.ModuleList(nn.Linear(c.hidden, c.hidden) for _ in range(2))
        self.out = nn.Linear(c.hidden, c.latent)
        if self.guidable:
            self.null_emotion = nn.Parameter(torch.zeros(c.hidden))
        if c.emotion_film:  # per block: a scale and a shift of the hidden units
            self.emotion_film = nn.Linear(N_EMOTIONS, 2 * len(self.blocks) * c.hidden)
            nn.init.zeros_(self.emotion_film.weight)
            nn.init.zeros_(self.emotion_film.bias)
        if c.emotion_posture:  # (8, n_pose) normalised posture offset per unit of each emotion's weight
            self.register_buffer("emotion_offsets", torch.zeros(N_EMOTIONS, c.n_pose))
        if c.emotion_temperature:
            self.register_buffer("emotion_temperatures", torch.full((N_EMOTIONS,), DEFAULT_TEMPERATURE))
        if c.plan_codes:
            self.plan_in = nn.Linear(c.plan_size, c.hidden)
            self.plan_head = mlp(c.hidden + c.plan_size, c.hidden // 2, c.plan_size)
            # cumulative sums as a product (B, K) @ (K, K): a plain matrix product in every exporter
            self.register_buffer("plan_cumulative", torch.triu(torch.ones(c.plan_codes, c.plan_codes)),
                                 persistent=False)  # fmt: skip

    @property
    def guidable(self) -> bool:
        """Whether it was trained with a null emotion, which classifier-free guidance needs."""
        return self.config.emotion_dropout > 0

    @property
    def conv_layers(self) -> list[CausalConv1d]:
        return [cast(CausalConv1d, conv) for conv in self.convs]

    def encode_frames(self, features: Tensor) -> Tensor:
        """(B, M, 4, n_mels) raw log-mel -> (B, M, C) projected, before the convolutions."""
        B, M = features.shape[:2]
        return self.project(((features - self.feature_mean) / self.feature_std).reshape(B, M, -1))

    def encode_sequence(self, features: Tensor) -> Tensor:
        """(B, M, 4, n_mels) -> (B, M, C): the whole causal encoder at once (training path)."""
        h = self.encode_frames(features).transpose(1, 2)
        return residual_convs(self.conv_layers, h).transpose(1, 2)

    def history_taps(self, ring: Tensor) -> Tensor:
        """(B, history_span, n_pose) produced poses, oldest first -> (B, history_frames, n_pose), the ones
        the network reads, at the config's lags."""
        c = self.config
        return ring[:, [c.history_span - lag for lag in c.lags]] if c.history_lags else ring

    def context(self, window: Tensor, style: Tensor, history: Tensor) -> Tensor:
        """window (B, D + 1, C); style (B, style_dim); history (B, N, n_pose) -> (B, hidden): what the
        plan and the flow are conditioned on besides the emotion."""
        return self.audio_context(window.flatten(1)) + self.style(style) + self.history(history.flatten(1))

    def plan_logits(self, context: Tensor, emotion: Tensor, previous: Tensor) -> Tensor:
        """`context` (B, hidden), emotion (B, 8) and the last plan (B, plan_size; zero at a stream's
        start) -> (B, 2, plan_codes) each arm's logits of its plan now."""
        h = nn.functional.silu(context + self.emotion(emotion))
        return self.plan_head(torch.cat([h, previous], dim=-1)).unflatten(-1, (2, self.config.plan_codes))

    def sample_plan(self, logits: Tensor, uniform: Tensor) -> Tensor:
        """(B, 2, K) logits and (B, 2) uniform draws in [0, 1) -> (B, 2K) one-hot plans: the code whose
        cumulative probability first exceeds the draw (inverse-CDF sampling, one draw an arm)."""
        cdf = logits.softmax(-1) @ self.plan_cumulative
        # Counted in floats (small integers, exact): TensorRT's parser takes no integer Clip.
        below = (cdf < uniform[..., None]).to(logits.dtype)
        code = below.sum(-1, keepdim=True).clamp(max=self.config.plan_codes - 1)
        codes = torch.arange(self.config.plan_codes, device=logits.device, dtype=logits.dtype)
        return (code == codes).to(logits.dtype).flatten(1)

    def condition(self, context: Tensor, emotion: Tensor, plan: Tensor | None = None,
                  dropped: Tensor | None = None) -> Tensor:  # fmt: skip
        """`context` (B, hidden), emotion (B, 8) and, with plan_codes, the plan (B, plan_size) ->
        (B, hidden) (twice that with FiLM). `dropped` (B,) bool, in training: the rows whose emotion
        gives way to the null emotion."""
        emotion_term = self.emotion(emotion)
        if dropped is not None:
            emotion_term = torch.where(dropped[:, None], self.null_emotion, emotion_term)
        cond = nn.functional.silu(self._with_plan(context, plan) + emotion_term)
        if not self.config.emotion_film:
            return cond
        film = self.emotion_film(emotion)
        if dropped is not None:
            film = film * ~dropped[:, None]  # the null emotion modulates nothing
        return torch.cat([cond, film], dim=-1)

    def _with_plan(self, context: Tensor, plan: Tensor | None) -> Tensor:
        if (plan is None) != (self.config.plan_codes == 0):
            raise ValueError("a network with plan_codes needs a plan, and one without takes none")
        return context if plan is None else context + self.plan_in(plan)

    def guidance_conditions(self, context: Tensor, emotion: Tensor, plan: Tensor | None = None
                            ) -> tuple[Tensor, Tensor]:  # fmt: skip
        """The condition, and the same with the null emotion: guidance pushes away from the second."""
        context = self._with_plan(context, plan)
        cond = nn.functional.silu(context + self.emotion(emotion))
        null = nn.functional.silu(context + self.null_emotion)
        if not self.config.emotion_film:
            return cond, null
        film = self.emotion_film(emotion)
        return torch.cat([cond, film], dim=-1), torch.cat([null, torch.zeros_like(film)], dim=-1)

    def next_pose(self, z: Tensor) -> Tensor:
        """Normalised latent -> normalised (residual) pose, bounded: it feeds the history, so one wild
        frame must not grow into a runaway or a NaN that never leaves the state."""
        pose = self.vae.decode(z * self.latent_std + self.latent_mean)
        return torch.nan_to_num(pose, nan=0.0, posinf=0.0, neginf=0.0).clamp(-POSE_BOUND, POSE_BOUND)

    def normalize_pose(self, pose: Tensor) -> Tensor:
        return (pose - self.pose_mean) / self.pose_std

    def posture(self, emotion: Tensor) -> Tensor:
        """(..., 8) emotion weights -> (..., n_pose) the normalised posture offset that the residual the
        model makes is added to (zero for a network without one)."""
        if not self.config.emotion_posture:
            return emotion.new_zeros((*emotion.shape[:-1], self.config.n_pose))
        return emotion @ self.emotion_offsets

    def denormalize(self, x: Tensor) -> Tensor:
        return x * self.pose_std + self.pose_mean

    def temperature(self, emotion: Tensor) -> Tensor:
        """(B, 8) emotion weights -> (B, 1) sampling temperature: neutral's, moved towards each emotion's
        own by its weight, so an emotion at half intensity samples halfway between."""
        neutral = self.emotion_temperatures[EMOTIONS.index("neutral")]
        return (neutral + emotion @ (self.emotion_temperatures - neutral)).clamp(0.0, 2.0)[:, None]

    def embed_style(self, clip: Tensor) -> Tensor:
        """(B, T, n_pose) pose features (not normalised) of a reference clip -> (B, style_dim)."""
        return self.style_encoder(self.normalize_pose(clip))


class GestureGenerator(StreamingGenerator):
    """The step function around a GestureNetwork for one number of sampler steps."""

    time_terms: Tensor

    def __init__(
        self,
        network: GestureNetwork,
        n_steps: int = 2,
        temperature: float | None = None,
        smoothing: float = DEFAULT_SMOOTHING,
        guidance: float | None = None,
        noise_correlation: float | None = None,
        masks: bool = True,
    ) -> None:
        super().__init__()
        self.masks = masks
        if not 1 <= n_steps <= 8:
            raise ValueError(f"sampler steps must be 1..8, got {n_steps}")
        if not 0 < smoothing <= 1 or (temperature is not None and temperature < 0):
            raise ValueError(f"need 0 < smoothing <= 1 and temperature >= 0, got {smoothing}, {temperature}")
        if noise_correlation is not None and not 0 <= noise_correlation < 1:
            raise ValueError(f"noise correlation must be in [0, 1), got {noise_correlation}")
        # No guidance asked for: the network's own (1, none, for one trained without a null emotion).
        self.guidance = network.config.guidance if guidance is None else guidance
        if self.guidance != 1.0 and not network.guidable:
            raise ValueError("this gesture network has no null emotion, so it cannot be guided (guidance 1)")
        self.network = network
        self.n_steps = n_steps
        # A lower sampling temperature keeps the motion nearer the conditional mean, where emotion and style
        # show; an output low-pass (smoothing below 1) takes frame-to-frame jitter out for about a frame of
        # lag, and blunts the strokes, so by default there is none (docs/gestures.md).
        # No temperature: the network's own per emotion where it has them, else the default for all.
        if temperature is None and not network.config.emotion_temperature:
            temperature = DEFAULT_TEMPERATURE
        self.temperature, self.smoothing = temperature, smoothing
        c = network.config
        self.delay = c.lookahead_frames
        with torch.no_grad():
            self.register_buffer("time_terms", network.sampler_time_terms(n_steps), persistent=False)
        # Training draws each frame's noise on its own, so how it is correlated across frames is a choice
        # made at sampling: the config's unless asked otherwise.
        self.rho = c.noise_correlation if noise_correlation is None else noise_correlation
        self.spec = StepSpec(
            inputs=(
                TensorSpec("features", (FEATURES_PER_FRAME, c.n_mels)),
                TensorSpec("emotion", (1, N_EMOTIONS)),
                TensorSpec("style", (1, c.style_dim)),
            ),
            state=tuple(
                TensorSpec(f"conv{i}", (c.channels, conv.context)) for i, conv in enumerate(network.conv_layers)
            )
            + (
                TensorSpec("encoded", (self.delay + 1, c.channels)),
                TensorSpec("history", (c.history_span, c.n_pose)),  # residual poses (without the posture)
                TensorSpec("noise_state", (c.latent,)),
                TensorSpec("smoothed", (c.n_pose,)),  # the low-passed output pose, normalised
                TensorSpec("warmed", (1,)),
            )
            + ((TensorSpec("plan", (c.plan_size,)),) if c.plan_codes else ()),  # the last plan drawn
            # The flow's noise, then with a plan one standard normal draw an arm for the plan's sampling.
            noise=TensorSpec("noise", (c.latent + (2 if c.plan_codes else 0),)),
            # The pose features, and the same pose in the body stream's wire layout (quaternions).
            outputs=(TensorSpec("pose", (1, c.n_pose)), TensorSpec("body", (1, len(BODY_CHANNELS)))),
            inputs_per_step=FEATURES_PER_FRAME,
            frames_per_step=1,
            delay_frames=self.delay,
            lookahead_inputs=FEATURES_PER_FRAME * self.delay,
        )

    @property
    def engine_name(self) -> str:
        return f"gesture-steps{self.n_steps}" + ("" if self.masks else "-compact")

    def extra_repr(self) -> str:
        """The sampling constants that the step bakes in (engines/cache.py hashes them with the weights)."""
        return f"n_steps={self.n_steps}, temperature={self.temperature}, smoothing={self.smoothing}, " \
               f"guidance={self.guidance}, noise_correlation={self.rho}, masks={self.masks}"  # fmt: skip

    @property
    def lookahead_ms(self) -> float:
        """Audio past a frame's media time that the frame waits for."""
        return (self.delay + 1) * 1000.0 / 30.0

    def _smooth(self, previous: Tensor, pose: Tensor) -> Tensor:
        """One-pole low-pass of the normalised output; it starts from the mean pose, as the history does."""
        return previous + self.smoothing * (pose - previous)

    def _correlated(self, previous: Tensor, noise: Tensor) -> Tensor:
        return self.rho * previous + math.sqrt(1 - self.rho**2) * noise

    def _sample(self, noise: Tensor, eps: Tensor, window: Tensor, emotion: Tensor, style: Tensor, history: Tensor,
                plan: Tensor | None) -> tuple[Tensor, Tensor | None]:  # fmt: skip
        """This frame's fresh noise (for the plan's draws), the correlated noise (B, latent), the
        condition's inputs and the last plan (None without one) -> the next normalised residual pose
        (without the emotion posture), with guidance on the emotion when its weight is not 1, and the
        plan drawn for it."""
        net = self.network
        context = net.context(window, style, history)
        if plan is not None:
            uniform = 0.5 * (1 + torch.erf(noise[:, -2:] / math.sqrt(2)))  # standard normal -> uniform
            plan = net.sample_plan(net.plan_logits(context, emotion, plan), uniform)
        scale = net.temperature(emotion) if self.temperature is None else self.temperature
        if self.guidance == 1.0:
            z = net.integrate(scale * eps, net.condition(context, emotion, plan), self.time_terms)
        else:
            cond, null = net.guidance_conditions(context, emotion, plan)
            z = net.integrate(scale * eps, cond, self.time_terms, null, self.guidance)
        return net.next_pose(z), plan

    def step(
        self, inputs: TensorDict, state: TensorDict, noise: Tensor, reset: Tensor, active: Tensor
    ) -> tuple[TensorDict, TensorDict]:
        net = self.network
        B = reset.shape[0]
        if self.masks:
            state = apply_reset(state, self.init_state(B, reset.device), reset)
        # (B, D + 1, C): frame k's own encoding .. k + D
        encoded, new_state = encode_step(net.conv_layers, net.encode_frames(inputs["features"][:, None]), state)
        eps = self._correlated(state["noise_state"], noise[:, : net.config.latent])
        emotion = inputs["emotion"][:, 0]
        x, plan = self._sample(noise, eps, encoded, emotion, inputs["style"][:, 0], net.history_taps(state["history"]),
                               state.get("plan"))  # fmt: skip
        warm = (state["warmed"] >= self.delay).reshape(B, 1)
        smoothed = self._smooth(state["smoothed"], x + net.posture(emotion))  # warm-up leaves it alone (below)
        new_state |= {
            "encoded": encoded,
            "history": torch.where(warm[..., None], push_ring(state["history"], x[:, None]), state["history"]),
            "noise_state": torch.where(warm, eps, state["noise_state"]),
            "smoothed": torch.where(warm, smoothed, state["smoothed"]),
            "warmed": torch.clamp(state["warmed"] + 1, max=float(self.delay)),
        }
        if plan is not None:
            new_state["plan"] = torch.where(warm, plan, state["plan"])
        pose = net.denormalize(smoothed)
        outputs = {"pose": pose[:, None], "body": pose_to_wire(pose)[:, None]}
        if not self.masks:
            return outputs, new_state
        return zero_inactive(outputs, active), keep_inactive(new_state, state, active)

    def forward_sequence(self, inputs: TensorDict, noise: Tensor) -> TensorDict:
        net = self.network
        c = net.config
        features = inputs["features"]  # (B, 4S, n_mels)
        B, T_in, n_mels = features.shape
        S = T_in // FEATURES_PER_FRAME
        encoded = net.encode_sequence(features.reshape(B, S, FEATURES_PER_FRAME, n_mels))
        history = features.new_zeros(B, c.history_span, c.n_pose)
        eps = features.new_zeros(B, c.latent)
        smoothed = features.new_zeros(B, c.n_pose)
        plan = features.new_zeros(B, c.plan_size) if c.plan_codes else None
        frames = []
        for k in range(S - self.delay):
            d = k + self.delay
            eps = self._correlated(eps, noise[:, d, : c.latent])
            emotion = inputs["emotion"][:, d]
            x, plan = self._sample(noise[:, d], eps, encoded[:, k : d + 1], emotion, inputs["style"][:, d],
                                   net.history_taps(history), plan)  # fmt: skip
            history = push_ring(history, x[:, None])
            smoothed = self._smooth(smoothed, x + net.posture(emotion))
            frames.append(net.denormalize(smoothed))
        pose = torch.stack(frames, dim=1)
        return {"pose": pose, "body": pose_to_wire(pose)}


def save_gesture_checkpoint(path: Any, network: GestureNetwork, style_names: list[str], metadata: dict) -> None:
    """Weights, architecture config, rig (joint names and which are generated), styles and metadata."""
    torch.save(
        {
            "kind": "emostream-gesture",
            "config": asdict(network.config),
            "rig": {"joints": list(SMPLX_JOINTS), "generated": list(GESTURE_JOINTS)},
            "style_names": style_names,
            "state_dict": network.state_dict(),
            "metadata": metadata,
        },
        path,
    )


def with_config(network: GestureNetwork, config: GestureConfig, new: set[str]) -> GestureNetwork:
    """The same weights under another config; only the parameters and buffers named in `new` (the parts
    the config adds) may be missing from them, and they keep their initial values."""
    out = GestureNetwork(config, n_styles=network.style_presets.shape[0])
    missing, unexpected = out.load_state_dict(network.state_dict(), strict=False)
    if unexpected or set(missing) - new:
        raise ValueError(f"cannot carry the weights over: missing {missing}, unexpected {unexpected}")
    return out


def load_gesture_checkpoint(path: Any) -> tuple[GestureNetwork, list[str], dict[str, Any]]:
    """Rebuilds the network from its own config; refuses a checkpoint for another skeleton."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    rig = blob.get("rig", {})
    if blob.get("kind") != "emostream-gesture" or rig.get("joints") != list(SMPLX_JOINTS) or rig.get(
            "generated") != list(GESTURE_JOINTS):  # fmt: skip
        raise ValueError(f"{path} is not a gesture checkpoint for this skeleton")
    names = list(blob["style_names"])
    network = GestureNetwork(GestureConfig.from_dict(blob["config"]), n_styles=len(names))
    network.load_state_dict(blob["state_dict"])
    return network.eval(), names, blob["metadata"]


def style_embedding(network: GestureNetwork, style_names: list[str], style: str) -> np.ndarray:
    """A style preset by name, or the embedding of a 4 to 10 s reference clip: an .npz with
    body_axis_angle (`emostream animate`) or BEAT2's poses. Longer clips use their first 10 s."""
    if style in style_names:
        return network.style_presets[style_names.index(style)].cpu().numpy().copy()  # the network may be on a GPU
    if not style.endswith(".npz"):
        raise ConfigError(f"unknown style {style!r}: use one of {', '.join(style_names)} or a motion clip .npz")
    axis_angle, trans = load_motion(Path(style))
    lo, hi = STYLE_CLIP_FRAMES
    if axis_angle.shape[0] < lo:
        raise ConfigError(f"{style}: a style reference needs at least {lo / 30:.0f} s of motion, "
                          f"got {axis_angle.shape[0] / 30:.1f} s")  # fmt: skip
    clip = pose_features(axis_angle[:hi], trans[:hi] - trans[:1])
    with torch.no_grad():
        return network.embed_style(torch.from_numpy(clip)[None].to(network.style_presets.device))[0].cpu().numpy()
