"""Streaming building blocks with explicit state: causal convolutions with caches, and ring buffers."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class CausalConv1d(nn.Module):
    """A 1-D convolution that sees only the present and the past, run whole or frame by frame.

    The cache holds the last (kernel_size - 1) * dilation input frames; it starts as silence (zeros),
    which is the same as left zero padding in `forward`.
    """

    context: int  # past frames each output needs: (kernel_size - 1) * dilation
    in_channels: int

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation)
        self.in_channels = in_channels
        self.context = (kernel_size - 1) * dilation

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, C_in, T) -> (B, C_out, T), left-padded with zeros."""
        return self.conv(nn.functional.pad(x, (self.context, 0)))

    def init_cache(self, batch: int) -> Tensor:
        return torch.zeros(batch, self.in_channels, self.context)

    def step(self, x: Tensor, cache: Tensor) -> tuple[Tensor, Tensor]:
        """x: (B, C_in, n) new frames; cache: (B, C_in, context). Returns (B, C_out, n) and the new cache."""
        n = x.shape[-1]
        window = torch.cat([cache, x], dim=-1)  # (B, C_in, context + n)
        if n == 1:
            # One output frame is one matrix product over the kernel's taps. PyTorch's CPU path for a
            # dilated convolution of a short input is an im2col of thousands of small ops, 10x slower.
            dilation = self.conv.dilation[0]
            taps = window[..., ::dilation]  # (B, C_in, kernel_size): exactly the inputs the kernel reads
            weight = self.conv.weight.reshape(self.conv.out_channels, -1)  # (C_out, C_in * kernel_size)
            y = nn.functional.linear(taps.reshape(taps.shape[0], -1), weight, self.conv.bias)
            return y[..., None], window[..., 1:]
        return self.conv(window), window[..., n:]


def residual_convs(convs: list[CausalConv1d], h: Tensor) -> Tensor:
    """h + silu(conv(h)) through each convolution in turn, whole sequence: (B, C, T) -> (B, C, T)."""
    for conv in convs:
        h = h + nn.functional.silu(conv(h))
    return h


def residual_convs_step(
    convs: list[CausalConv1d], h: Tensor, caches: dict[str, Tensor], prefix: str = "conv"
) -> tuple[Tensor, dict[str, Tensor]]:
    """The same, frame by frame: h (B, C, n) and caches named f"{prefix}{i}" -> output and new caches."""
    new_caches = {}
    for i, conv in enumerate(convs):
        y, new_caches[f"{prefix}{i}"] = conv.step(h, caches[f"{prefix}{i}"])
        h = h + nn.functional.silu(y)
    return h, new_caches


def push_ring(buffer: Tensor, frames: Tensor) -> Tensor:
    """Ring buffer of the most recent frames, oldest first: buffer (B, N, C), frames (B, n, C) -> (B, N, C).

    Shifting by concatenation keeps shapes static and the graph free of data-dependent indexing.
    """
    n = frames.shape[1]
    return torch.cat([buffer[:, n:], frames], dim=1)


def encode_step(
    convs: list[CausalConv1d], projected: Tensor, state: dict[str, Tensor], prefix: str = ""
) -> tuple[Tensor, dict[str, Tensor]]:
    """One frame through a causal encoder: projected (B, 1, C) -> the ring of recent encodings
    state[prefix + "encoded"] with this frame's pushed last (B, N, C), and the new convolution caches
    (named prefix + "conv0" and so on: one network's encoder can run two passes over two inputs)."""
    h, new_state = residual_convs_step(convs, projected.transpose(1, 2), state, prefix + "conv")
    return push_ring(state[prefix + "encoded"], h.transpose(1, 2)), new_state
