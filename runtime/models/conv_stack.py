"""A small causal generator over log-mel frames: the proving ground of the step contract.

Dilated causal convolutions (with caches) encode the audio at the output frame rate; a ring buffer of the
last `lookahead + 1` encodings lets each frame see `lookahead` frames of future audio at the price of the
same delay; a ring buffer of the frames it already produced conditions the next one (autoregressive
history), and noise enters from outside. Every kind of state a real generator carries is here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
from torch import Tensor, nn

from emostream.runtime.layers import CausalConv1d, encode_step, push_ring, residual_convs
from emostream.runtime.step import (
    StepSpec,
    StreamingGenerator,
    TensorDict,
    TensorSpec,
    apply_reset,
    keep_inactive,
    zero_inactive,
)


@dataclass(frozen=True)
class ConvStackConfig:
    n_mels: int = 80  # features per input frame
    inputs_per_step: int = 2  # input frames per output frame (120 Hz features, 60 fps frames)
    channels: int = 64  # width of the encoder
    kernel_size: int = 3  # of every causal convolution
    dilations: tuple[int, ...] = (1, 2, 4)  # one causal convolution each; receptive field grows
    lookahead_frames: int = 2  # future output frames of audio each frame sees (and waits for)
    n_outputs: int = 8  # channels per output frame
    history_frames: int = 4  # recent output frames fed back as context
    noise_scale: float = 0.1  # how strongly the noise input moves the output

    def __post_init__(self) -> None:
        if min(self.n_mels, self.inputs_per_step, self.channels, self.kernel_size, self.n_outputs) < 1:
            raise ValueError(f"ConvStackConfig sizes must be positive: {self}")
        if self.lookahead_frames < 0 or self.history_frames < 1 or not self.dilations:
            raise ValueError(f"ConvStackConfig needs lookahead >= 0, history >= 1 and a dilation: {self}")


class CausalConvStack(StreamingGenerator):
    def __init__(self, config: ConvStackConfig = ConvStackConfig()) -> None:
        super().__init__()
        c = self.config = config
        self.project = nn.Linear(c.inputs_per_step * c.n_mels, c.channels)
        self.convs = nn.ModuleList(CausalConv1d(c.channels, c.channels, c.kernel_size, d) for d in c.dilations)
        context = (c.lookahead_frames + 1) * c.channels + c.history_frames * c.n_outputs
        self.head = nn.Sequential(nn.Linear(context, 64), nn.SiLU(), nn.Linear(64, c.n_outputs))
        self.spec = StepSpec(
            inputs=(TensorSpec("features", (c.inputs_per_step, c.n_mels)),),
            state=tuple(TensorSpec(f"conv{i}", (c.channels, conv.context)) for i, conv in enumerate(self.conv_layers))
            + (
                TensorSpec("encoded", (c.lookahead_frames + 1, c.channels)),
                TensorSpec("history", (c.history_frames, c.n_outputs)),
                TensorSpec("warmed", (1,)),  # steps taken, saturating at the lookahead
            ),
            noise=TensorSpec("noise", (c.n_outputs,)),
            outputs=(TensorSpec("frames", (1, c.n_outputs)),),
            inputs_per_step=c.inputs_per_step,
            frames_per_step=1,
            delay_frames=c.lookahead_frames,
            lookahead_inputs=c.lookahead_frames * c.inputs_per_step,
        )

    @property
    def conv_layers(self) -> list[CausalConv1d]:
        return [cast(CausalConv1d, conv) for conv in self.convs]

    def _frame(self, encoded: Tensor, history: Tensor, noise: Tensor) -> Tensor:
        """encoded (B, L + 1, C), history (B, N, n_out), noise (B, n_out) -> one frame (B, n_out)."""
        context = torch.cat([encoded.flatten(1), history.flatten(1)], dim=-1)
        return self.head(context) + self.config.noise_scale * noise

    def step(
        self, inputs: TensorDict, state: TensorDict, noise: Tensor, reset: Tensor, active: Tensor
    ) -> tuple[TensorDict, TensorDict]:
        c = self.config
        B = reset.shape[0]
        state = apply_reset(state, self.init_state(B, reset.device), reset)
        projected = self.project(inputs["features"].reshape(B, 1, -1))  # (B, 1, C)
        encoded, new_state = encode_step(self.conv_layers, projected, state)  # (B, L + 1, C)
        frame = self._frame(encoded, state["history"], noise)  # (B, n_out)
        # Warm-up frames (negative index) stay out of the history, as in the offline path.
        warm = (state["warmed"] >= c.lookahead_frames).reshape(B, 1, 1)
        history = torch.where(warm, push_ring(state["history"], frame[:, None]), state["history"])
        new_state |= {
            "encoded": encoded,
            "history": history,
            "warmed": torch.clamp(state["warmed"] + 1, max=float(c.lookahead_frames)),
        }
        outputs = zero_inactive({"frames": frame[:, None]}, active)
        return outputs, keep_inactive(new_state, state, active)

    def forward_sequence(self, inputs: TensorDict, noise: Tensor) -> TensorDict:
        c = self.config
        B, T_in, _ = inputs["features"].shape
        n_steps = T_in // c.inputs_per_step
        x = self.project(inputs["features"].reshape(B, n_steps, -1))  # (B, S, C)
        encoded = residual_convs(self.conv_layers, x.transpose(1, 2)).transpose(1, 2)  # (B, S, C)
        history = torch.zeros(B, c.history_frames, c.n_outputs)
        frames = []
        for k in range(n_steps - c.lookahead_frames):
            frame = self._frame(encoded[:, k : k + c.lookahead_frames + 1], history, noise[:, k + c.lookahead_frames])
            history = push_ring(history, frame[:, None])
            frames.append(frame)
        return {"frames": torch.stack(frames, dim=1)}  # (B, S - L, n_out)
