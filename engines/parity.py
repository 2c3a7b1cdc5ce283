"""Parity of a backend against the eager step over a long streamed sequence.

Both run the same inputs step by step from a fresh state, each carrying its own state, for hundreds of
steps; slots get different reset and active masks along the way. The report gives the largest absolute
difference per output and per state tensor, so drift that accumulates in state shows up where it starts.

What to expect: feed-forward state (convolution caches, encodings) stays at float rounding, about 1e-6.
A generator that feeds its own samples back (the face model's history) amplifies rounding now and then,
as it amplifies any perturbation, so its history and outputs differ more, transiently: on the shipped
face model, up to about 1e-3 in the outputs (face units) over hundreds of steps (docs/engines.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from emostream.engines.backend import StepBackend
from emostream.runtime.step import StreamingGenerator, TensorDict


@dataclass(frozen=True)
class ParityReport:
    backend: str
    n_steps: int
    batch: int
    errors: dict[str, float]  # output or "state.<name>" -> max abs difference over the run

    @property
    def worst(self) -> float:
        return max(self.errors.values())

    @property
    def worst_output(self) -> float:
        return max(v for k, v in self.errors.items() if not k.startswith("state."))

    def summary(self) -> str:
        worst_name = max(self.errors, key=lambda k: self.errors[k])
        return (
            f"{self.backend} vs eager over {self.n_steps} steps x {self.batch} slots: max abs difference "
            f"{self.worst_output:.2e} in the outputs, {self.worst:.2e} overall (in {worst_name})"
        )


def random_sequence(
    generator: StreamingGenerator, batch: int, n_steps: int, seed: int
) -> tuple[TensorDict, torch.Tensor]:
    """Whole-sequence inputs (batch, n_steps * I, ...) and noise (batch, n_steps, ...), standard normal."""
    g = torch.Generator().manual_seed(seed)
    spec = generator.spec
    inputs = {
        t.name: torch.randn((batch, n_steps * t.shape[0], *t.shape[1:]), generator=g).to(t.dtype) for t in spec.inputs
    }
    noise = torch.randn((batch, n_steps, *spec.noise.shape), generator=g)
    return inputs, noise


def mixed_masks(batch: int, n_steps: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n_steps, batch) reset and active masks: slot 0 always streams, the others reset now and then
    (2% of steps) and sit idle for stretches (10% of steps)."""
    rng = np.random.default_rng(seed)
    reset = rng.random((n_steps, batch)) < 0.02
    active = rng.random((n_steps, batch)) > 0.1
    reset[:, 0], active[:, 0] = False, True
    return torch.from_numpy(reset), torch.from_numpy(active)


@torch.no_grad()
def streamed_parity(
    backend: StepBackend,
    n_steps: int = 300,
    batch: int = 3,
    seed: int = 0,
    inputs: TensorDict | None = None,
) -> ParityReport:
    """Runs `backend` and the eager step side by side; `inputs` (whole sequences) default to random."""
    generator = backend.generator
    spec = generator.spec
    random_inputs, noise = random_sequence(generator, batch, n_steps, seed)
    inputs = random_inputs if inputs is None else inputs
    reset, active = mixed_masks(batch, n_steps, seed + 1)
    per_step = {t.name: t.shape[0] for t in spec.inputs}
    device = backend.device
    eager_state = backend.init_state(batch)  # the eager step runs on the backend's device too
    state = backend.init_state(batch)
    errors = {t.name: 0.0 for t in spec.outputs} | {f"state.{t.name}": 0.0 for t in spec.state}
    for s in range(n_steps):
        step_inputs = {k: v[:, s * per_step[k] : (s + 1) * per_step[k]].to(device) for k, v in inputs.items()}
        masks = reset[s].to(device), active[s].to(device)
        expected, eager_state = generator.step(step_inputs, eager_state, noise[:, s].to(device), *masks)
        got, state = backend.step(step_inputs, state, noise[:, s].to(device), *masks)
        for name, value in expected.items():
            errors[name] = max(errors[name], _max_abs(got[name], value))
        for name, value in eager_state.items():
            errors[f"state.{name}"] = max(errors[f"state.{name}"], _max_abs(state[name], value))
    return ParityReport(backend.name, n_steps, batch, errors)


def _max_abs(got: torch.Tensor, expected: torch.Tensor) -> float:
    difference = (got.detach().float() - expected.float()).abs()
    return float(difference.max()) if difference.numel() else 0.0
