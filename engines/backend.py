"""The backend interface: run a generator's step function on a batch of slots with its explicit state.

Every backend takes and returns torch tensors (on its `device`) in the step contract's layout
(runtime/step.py): `outputs, state = backend.step(inputs, state, noise, reset, active)`. Backends that
need fixed shapes (CUDA graphs, TensorRT profiles) pad a batch up to the next of their batch buckets with
inactive slots, which by the contract leave no trace, and cut the outputs back.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

import torch
from torch import Tensor

from emostream.runtime.step import StepSpec, StreamingGenerator, TensorDict

BACKENDS = ("eager", "compiled", "onnx", "tensorrt")


class StepBackend(abc.ABC):
    """One generator (one lookahead, one sampler step count) compiled for one device."""

    name: str

    def __init__(self, generator: StreamingGenerator, device: str = "cpu") -> None:
        self.device = torch.device(device)
        self.generator = generator.eval().to(self.device)  # the eager reference and init_state run there too
        self.spec: StepSpec = generator.spec

    def init_state(self, batch: int) -> TensorDict:
        return self.generator.init_state(batch, self.device)

    @abc.abstractmethod
    def step(
        self, inputs: TensorDict, state: TensorDict, noise: Tensor, reset: Tensor, active: Tensor
    ) -> tuple[TensorDict, TensorDict]:
        """One step over all slots; the same contract as StreamingGenerator.step."""

    def describe(self) -> dict[str, str]:
        """What runs underneath, for logs and benchmark results."""
        return {"backend": self.name, "device": str(self.device)}


class EagerBackend(StepBackend):
    """The PyTorch module itself: the reference every other backend is measured against."""

    name = "eager"

    @torch.no_grad()
    def step(
        self, inputs: TensorDict, state: TensorDict, noise: Tensor, reset: Tensor, active: Tensor
    ) -> tuple[TensorDict, TensorDict]:
        return self.generator.step(inputs, state, noise, reset, active)


def pad_slots(tensor: Tensor, batch: int, fill: float | bool = 0) -> Tensor:
    """(n, ...) -> (batch, ...) with `fill` in the extra rows."""
    n = tensor.shape[0]
    if n == batch:
        return tensor
    extra = torch.full((batch - n, *tensor.shape[1:]), fill, dtype=tensor.dtype, device=tensor.device)
    return torch.cat([tensor, extra])


def flat_args(
    spec: StepSpec, inputs: TensorDict, state: TensorDict, noise: Tensor, reset: Tensor, active: Tensor
) -> list[Tensor]:
    """The step's arguments in graph order: inputs, state, noise, reset, active."""
    return [inputs[t.name] for t in spec.inputs] + [state[t.name] for t in spec.state] + [noise, reset, active]


def split_results(spec: StepSpec, results: Sequence[Tensor]) -> tuple[TensorDict, TensorDict]:
    """Flat results in graph order -> (outputs, new state)."""
    n_out = len(spec.outputs)
    outputs = {t.name: r for t, r in zip(spec.outputs, results[:n_out], strict=True)}
    state = {t.name: r for t, r in zip(spec.state, results[n_out:], strict=True)}
    return outputs, state


def padded_args(spec: StepSpec, args: list[Tensor], batch: int) -> list[Tensor]:
    """Pads flat step arguments to `batch` slots; the extra slots are inactive and never reset."""
    *data, reset, active = args
    return [pad_slots(a, batch) for a in data] + [pad_slots(reset, batch, False), pad_slots(active, batch, False)]
