"""The conditional flow-matching velocity network and its Euler sampler, shared by the face generator
(in its output space) and the gesture generator (in its motion latent).

`FlowMatching` is a mixin without parameters of its own: the network that uses it defines `x_in`,
`t_in`, `blocks` and `out`, so checkpoints keep their parameter names.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

TIME_FEATURES = 32  # width of the sinusoidal flow-time embedding


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding of the flow time t in [0, 1]: (B,) -> (B, dim)."""
    freqs = torch.exp(torch.arange(dim // 2, dtype=torch.float32, device=t.device) * (-math.log(1000.0) / (dim // 2)))
    angles = t[:, None] * 1000.0 * freqs[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


class FlowMatching:
    x_in: nn.Linear  # sample -> hidden
    t_in: nn.Linear  # time embedding -> hidden
    blocks: nn.ModuleList  # residual hidden -> hidden layers
    out: nn.Linear  # hidden -> velocity

    def time_term(self, t: Tensor) -> Tensor:
        """Flow times (B,) in [0, 1] -> their (B, hidden) contribution to the velocity network."""
        return self.t_in(timestep_embedding(t, TIME_FEATURES))

    def sampler_time_terms(self, n_steps: int) -> Tensor:
        """`time_term` at the Euler sampler's times i / n_steps: (n_steps, hidden), for `integrate`. Made on
        the network's device: a server builds generators for new step counts after moving it to a GPU."""
        times = torch.arange(n_steps, dtype=torch.float32, device=self.t_in.weight.device) / n_steps
        return self.time_term(times)

    def velocity(self, x: Tensor, time_term: Tensor, cond: Tensor) -> Tensor:
        """x (B, n) sample; time_term from `time_term`, (B or 1, hidden); cond (B, hidden) -> (B, n).

        A wider cond carries, after its first `hidden` values, a scale and a shift per block (FiLM): each
        block's output h becomes h * (1 + scale) + shift."""
        hidden = self.x_in.out_features
        film = None
        if cond.shape[-1] != hidden:
            cond, film = cond[:, :hidden], cond[:, hidden:]
        h = nn.functional.silu(self.x_in(x) + time_term + cond)
        for i, block in enumerate(self.blocks):
            h = h + nn.functional.silu(block(h))
            if film is not None:
                scale = film[:, 2 * i * hidden : (2 * i + 1) * hidden]
                shift = film[:, (2 * i + 1) * hidden : (2 * i + 2) * hidden]
                h = h * (1 + scale) + shift
        return self.out(h)

    def integrate(
        self, noise: Tensor, cond: Tensor, time_terms: Tensor, null: Tensor | None = None, guidance: float = 1.0
    ) -> Tensor:
        """Euler integration of the flow from noise (t = 0) to a sample (t = 1), unrolled.

        time_terms: (n_steps, hidden), `time_term` at t = i / n_steps, computed once per generator.
        null: the condition without what is guided (B, hidden), for classifier-free guidance; each step's
        velocity is then null's + guidance * (cond's - null's), both halves in one batch.
        """
        x = noise
        n_steps = time_terms.shape[0]
        both = None if null is None else torch.cat([cond, null])
        for i in range(n_steps):
            if both is None:
                v = self.velocity(x, time_terms[i : i + 1], cond)
            else:
                v_both = self.velocity(torch.cat([x, x]), time_terms[i : i + 1], both)
                # Sliced, not chunked: chunk(2) makes the ONNX exporter fix the batch size.
                v_cond, v_null = v_both[: x.shape[0]], v_both[x.shape[0] :]
                v = v_null + guidance * (v_cond - v_null)
            x = x + v / n_steps
        return x
