"""The step contract every generator implements, so every backend, exporter and the batcher can run it.

A generator is a pure function over explicit state:

    state = model.init_state(batch)
    outputs, state = model.step(inputs, state, noise, reset, active)

Shapes are fixed per batch size, state is a dict of tensors (conv caches, ring buffers, counters), noise
comes in from outside (no RNG inside), and the sampler's steps are unrolled inside `step`. `reset[b]`
returns slot b to its initial state before the step; `active[b] = False` leaves slot b's state exactly
as it was and zeroes its outputs. Slots never read each other. A step makes every tensor it needs on its
inputs' device (`init_state(batch, device)`), so it runs wholly on a GPU.

Timing: step s consumes input frames [s * I, (s + 1) * I) and emits output frames
[s * O - D, (s + 1) * O - D), with I = inputs_per_step, O = frames_per_step and D = delay_frames;
frames with a negative index are warm-up and carry no meaning. Output frame k may depend on input frames
up to `last_input_for(k)`: the input aligned with the end of frame k plus `lookahead_inputs`.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, replace
from typing import Protocol

import torch
from torch import Tensor, nn

TensorDict = dict[str, Tensor]


@dataclass(frozen=True)
class TensorSpec:
    """One named tensor of the step function, per slot (the batch dimension is left out)."""

    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype = torch.float32


@dataclass(frozen=True)
class StepSpec:
    """Names, shapes and timing of a generator's step function."""

    inputs: tuple[TensorSpec, ...]  # per step; the first axis of each is its I input frames
    state: tuple[TensorSpec, ...]
    noise: TensorSpec
    outputs: tuple[TensorSpec, ...]  # per step; the first axis of each is its O output frames
    inputs_per_step: int  # I: input (feature) frames consumed by one step
    frames_per_step: int  # O: output frames emitted by one step
    delay_frames: int  # D: output frames a frame waits before it is emitted
    lookahead_inputs: int  # input frames past a frame's own end that it may depend on

    def last_input_for(self, frame: int) -> int:
        """Index of the last input frame that output frame `frame` may depend on."""
        return ((frame + 1) * self.inputs_per_step) // self.frames_per_step - 1 + self.lookahead_inputs


class StreamingGenerator(nn.Module, abc.ABC):
    """Base class of every model the runtime streams. Subclasses implement the four methods below.

    `masks` False builds the step for compact batches: every row is active and a row to reset has been
    zeroed by the caller (runtime/slot_table.py's compact mode), so the step leaves out the reset and
    activity masks, a fifth of its graph. The contract's masks hold only with `masks` True (the default).
    """

    spec: StepSpec
    masks: bool = True

    @property
    def engine_name(self) -> str:
        """Names this generator's exported graphs and engines in the engine cache (engines/cache.py)."""
        return type(self).__name__.lower()

    def init_state(self, batch: int, device: torch.device | str | None = None) -> TensorDict:
        """Initial state for `batch` slots: every tensor shaped (batch, *spec.state[i].shape), all zero
        (nothing heard yet), on `device` (the CPU by default). A step resets slots to it on its inputs'
        device, so the step runs wholly on a GPU."""
        return {t.name: torch.zeros((batch, *t.shape), dtype=t.dtype, device=device) for t in self.spec.state}

    @abc.abstractmethod
    def step(
        self, inputs: TensorDict, state: TensorDict, noise: Tensor, reset: Tensor, active: Tensor
    ) -> tuple[TensorDict, TensorDict]:
        """One step over all slots. reset, active: bool (batch,). Returns (outputs, new_state)."""

    @abc.abstractmethod
    def forward_sequence(self, inputs: TensorDict, noise: Tensor) -> TensorDict:
        """The offline reference over whole sequences (the training path).

        inputs: each (batch, n_steps * I, ...); noise: (batch, n_steps, *noise.shape).
        Returns outputs for frames 0 .. n_steps * O - D - 1, each (batch, n_frames, ...).
        """

    def forward(self, *flat: Tensor) -> tuple[Tensor, ...]:
        """The step on flat tensors in spec order, for exporters: inputs, state, noise, reset, active ->
        outputs, new state."""
        spec = self.spec
        n_in, n_state = len(spec.inputs), len(spec.state)
        inputs = {t.name: x for t, x in zip(spec.inputs, flat[:n_in], strict=True)}
        state = {t.name: x for t, x in zip(spec.state, flat[n_in : n_in + n_state], strict=True)}
        noise, reset, active = flat[n_in + n_state :]
        outputs, new_state = self.step(inputs, state, noise, reset, active)
        return tuple(outputs[t.name] for t in spec.outputs) + tuple(new_state[t.name] for t in spec.state)


class StepRunner(Protocol):
    """What runs a step: a StreamingGenerator itself, or an engines backend wrapping one."""

    def init_state(self, batch: int) -> TensorDict: ...

    def step(
        self, inputs: TensorDict, state: TensorDict, noise: Tensor, reset: Tensor, active: Tensor
    ) -> tuple[TensorDict, TensorDict]: ...


def _slot_mask(mask: Tensor, like: Tensor) -> Tensor:
    """(batch,) bool -> broadcastable against `like` (batch, ...)."""
    return mask.reshape((-1,) + (1,) * (like.dim() - 1))


def apply_reset(state: TensorDict, initial: TensorDict, reset: Tensor) -> TensorDict:
    """State with the slots where `reset` is true set back to `initial`."""
    return {k: torch.where(_slot_mask(reset, v), initial[k], v) for k, v in state.items()}


def keep_inactive(new: TensorDict, old: TensorDict, active: Tensor) -> TensorDict:
    """`new` where a slot is active, `old` where it is not: an idle slot's state is untouched."""
    return {k: torch.where(_slot_mask(active, v), v, old[k]) for k, v in new.items()}


def zero_inactive(outputs: TensorDict, active: Tensor) -> TensorDict:
    """Outputs with inactive slots zeroed, so nothing stale or random leaks out of an idle slot."""
    return {k: torch.where(_slot_mask(active, v), v, torch.zeros_like(v)) for k, v in outputs.items()}


class FlatState(StreamingGenerator):
    """A generator with its state packed into one (batch, n) tensor: the same step, but a batcher moves a
    slot's whole state with one gather and one scatter, and an exported graph has one state input and
    one state output instead of one per cache (the slicing happens inside the graph)."""

    def __init__(self, inner: StreamingGenerator) -> None:
        super().__init__()
        assert type(inner).init_state is StreamingGenerator.init_state, "a flat state starts all zero"
        self.inner = inner
        self.masks = inner.masks
        self.prefix = int(getattr(inner, "prefix", 0))
        self._shapes = [(t.name, t.shape, math.prod(t.shape)) for t in inner.spec.state]
        assert all(t.dtype == torch.float32 for t in inner.spec.state), "one flat tensor needs one dtype"
        total = sum(size for _, _, size in self._shapes)
        self.spec = replace(inner.spec, state=(TensorSpec("state", (total,)),))

    @property
    def engine_name(self) -> str:
        return f"{self.inner.engine_name}-flat"

    def extra_repr(self) -> str:
        return self.inner.extra_repr()  # the sampling constants, which the engine cache hashes

    def unpack(self, flat: Tensor) -> TensorDict:
        B = flat.shape[0]
        parts = torch.split(flat, [size for _, _, size in self._shapes], dim=1)
        return {name: part.reshape(B, *shape) for (name, shape, _), part in zip(self._shapes, parts, strict=True)}

    def pack(self, state: TensorDict) -> Tensor:
        B = next(iter(state.values())).shape[0]
        return torch.cat([state[name].reshape(B, size) for name, _, size in self._shapes], dim=1)

    def step(
        self, inputs: TensorDict, state: TensorDict, noise: Tensor, reset: Tensor, active: Tensor
    ) -> tuple[TensorDict, TensorDict]:
        outputs, new_state = self.inner.step(inputs, self.unpack(state["state"]), noise, reset, active)
        return outputs, {"state": self.pack(new_state)}

    def forward_sequence(self, inputs: TensorDict, noise: Tensor) -> TensorDict:
        return self.inner.forward_sequence(inputs, noise)
