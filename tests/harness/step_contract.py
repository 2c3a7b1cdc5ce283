"""The step-contract harness (DESIGN.md, contract 1). Subclass `StepContractSuite`, define `make_model`,
and pytest runs every check against that model:

- chunked streaming equals the offline forward over the same inputs;
- causality: changing input frames past a frame's declared lookahead changes nothing up to that frame,
  in both the streaming and the offline path (and changing them does move later frames);
- slot independence: resetting or idling a slot leaves the other slots bit-identical, an idle slot's
  state is untouched and its outputs are zero, and a reset slot behaves like a fresh stream;
- a step makes every tensor on its inputs' device (checked on the meta device, so no GPU is needed);
- ONNX export and parity against ONNX Runtime over a long streamed sequence with mixed masks
  (engines/parity.py), and TensorRT's ONNX parser would take the exported graph (engines/tensorrt_ops.py,
  a static check by the published operator matrix: TensorRT cannot be installed here).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import ClassVar

import pytest
import torch

from emostream.engines.parity import random_sequence
from emostream.runtime.step import StreamingGenerator, TensorDict

N_STEPS = 48  # streamed steps per check: long enough to fill every cache and ring buffer
BATCH = 4
ONNX_TOLERANCE = 1e-4


random_inputs = random_sequence  # whole-sequence inputs and noise, standard normal (engines/parity.py)


def step_inputs(model: StreamingGenerator, inputs: TensorDict, s: int) -> TensorDict:
    """Step s's slice of each input; an input's first axis per step is its own frames per step."""
    per_step = {t.name: t.shape[0] for t in model.spec.inputs}
    return {k: v[:, s * per_step[k] : (s + 1) * per_step[k]] for k, v in inputs.items()}


@torch.no_grad()
def stream(
    model: StreamingGenerator,
    inputs: TensorDict,
    noise: torch.Tensor,
    reset: torch.Tensor | None = None,
    active: torch.Tensor | None = None,
) -> tuple[TensorDict, list[TensorDict]]:
    """Runs step by step. reset/active: bool (n_steps, batch). Returns per-step outputs concatenated along
    the frame axis (batch, n_steps * O, ...), warm-up frames included, and the state after each step."""
    B, n_steps = noise.shape[:2]
    reset = torch.zeros(n_steps, B, dtype=torch.bool) if reset is None else reset
    active = torch.ones(n_steps, B, dtype=torch.bool) if active is None else active
    state = model.init_state(B)
    per_step: list[TensorDict] = []
    states: list[TensorDict] = []
    for s in range(n_steps):
        outputs, state = model.step(step_inputs(model, inputs, s), state, noise[:, s], reset[s], active[s])
        per_step.append(outputs)
        states.append(state)
    joined = {k: torch.cat([o[k] for o in per_step], dim=1) for k in per_step[0]}
    return joined, states


def drop_warmup(model: StreamingGenerator, frames: TensorDict) -> TensorDict:
    D = model.spec.delay_frames
    return {k: v[:, D:] for k, v in frames.items()}


class StepContractSuite:
    """Mix into a test class and define `make_model`; pytest collects the checks below."""

    # The largest difference between streamed and offline frames, per output; an output derived from
    # another by a step that magnifies rounding (a normalisation, a square root) may need more.
    streaming_tolerance: ClassVar[dict[str, float]] = {}
    # Another suite whose model's graph has every operator and path of this one's (a superset of its
    # options): its ONNX parity check stands for this one's, since an export takes seconds.
    onnx_parity_covered_by: ClassVar[str] = ""

    def make_model(self) -> StreamingGenerator:
        raise NotImplementedError

    @pytest.fixture(scope="class")
    @classmethod
    def model(cls) -> StreamingGenerator:
        torch.manual_seed(0)
        return cls().make_model().eval()

    def test_chunked_streaming_equals_offline(self, model: StreamingGenerator) -> None:
        inputs, noise = random_inputs(model, BATCH, N_STEPS, seed=1)
        streamed = drop_warmup(model, stream(model, inputs, noise)[0])
        with torch.no_grad():
            offline = model.forward_sequence(inputs, noise)
        for name, expected in offline.items():
            assert streamed[name].shape == expected.shape, name
            error = (streamed[name] - expected).abs().max().item()
            limit = self.streaming_tolerance.get(name, 1e-5)
            assert error < limit, f"{name}: streaming differs from offline by {error:.2e}"

    def test_frames_ignore_input_past_the_lookahead(self, model: StreamingGenerator) -> None:
        spec = model.spec
        inputs, noise = random_inputs(model, 1, N_STEPS, seed=2)
        base_stream = drop_warmup(model, stream(model, inputs, noise)[0])
        with torch.no_grad():
            base_offline = model.forward_sequence(inputs, noise)
        n_frames = next(iter(base_offline.values())).shape[1]
        per_step = {t.name: t.shape[0] for t in spec.inputs}
        for changed_step in (N_STEPS // 3, N_STEPS // 2):
            changed_input = changed_step * spec.inputs_per_step
            changed = {k: v.clone() for k, v in inputs.items()}
            for k, v in changed.items():
                v[:, changed_step * per_step[k] :] += 5.0  # a loud change from this step's inputs on
            allowed = [k for k in range(n_frames) if spec.last_input_for(k) < changed_input]
            moved = stream(model, changed, noise)[0]
            with torch.no_grad():
                moved_offline = model.forward_sequence(changed, noise)
            for name in base_offline:
                for before, after in ((base_stream, drop_warmup(model, moved)), (base_offline, moved_offline)):
                    assert torch.equal(before[name][:, allowed], after[name][:, allowed]), (
                        f"{name}: a frame changed although the input change lies beyond its lookahead"
                    )
                    # The model must react at all, or this check would prove nothing.
                    assert not torch.allclose(before[name][:, len(allowed) :], after[name][:, len(allowed) :])

    def test_reset_and_idle_slots_leave_the_others_bit_identical(self, model: StreamingGenerator) -> None:
        inputs, noise = random_inputs(model, BATCH, N_STEPS, seed=3)
        reset = torch.zeros(N_STEPS, BATCH, dtype=torch.bool)
        active = torch.ones(N_STEPS, BATCH, dtype=torch.bool)
        reset[10, 1] = True
        active[14:20, 1] = False
        active[:, 2] = False
        reset[7, 3] = True
        # The other slots also get different audio and noise: nothing of theirs may reach slot 0.
        other_inputs, other_noise = random_inputs(model, BATCH, N_STEPS, seed=6)
        mixed_inputs = {k: torch.cat([v[:1], other_inputs[k][1:3], v[3:]]) for k, v in inputs.items()}
        mixed_noise = torch.cat([noise[:1], other_noise[1:3], noise[3:]])
        baseline, _ = stream(model, inputs, noise)
        mixed, states = stream(model, mixed_inputs, mixed_noise, reset, active)
        for name in baseline:
            assert torch.equal(baseline[name][0], mixed[name][0]), f"{name}: slot 0 moved when others reset"
            assert torch.all(mixed[name][2] == 0), f"{name}: an idle slot must output zeros"
        per_step = model.spec.frames_per_step
        fresh = model.init_state(BATCH)
        for name, value in states[-1].items():
            assert torch.equal(value[2], fresh[name][2]), f"state {name!r} of a never-active slot changed"
            assert torch.equal(states[13][name][1], states[19][name][1]), f"idle slot 1's {name!r} changed"
        # Slot 3 after its reset at step 7 behaves like a stream that starts there.
        per_step_len = {t.name: t.shape[0] for t in model.spec.inputs}
        shifted_inputs = {k: torch.roll(v, -7 * per_step_len[k], dims=1) for k, v in inputs.items()}
        shifted_noise = torch.roll(noise, -7, dims=1)
        restarted, _ = stream(model, shifted_inputs, shifted_noise)
        n_after = (N_STEPS - 7) * per_step
        for name in baseline:
            expected = restarted[name][3, :n_after]
            assert torch.allclose(mixed[name][3, 7 * per_step :], expected, atol=1e-6), f"{name}: reset is not fresh"

    def test_a_step_stays_on_the_device_of_its_inputs(self, model: StreamingGenerator) -> None:
        # A tensor made on the CPU inside a step (a module-level constant, a reset state without a device)
        # breaks the step on a GPU; it did on an H100 once. On the meta device the same mix raises here.
        meta = torch.device("meta")
        on_meta = copy.deepcopy(model).to(meta)
        inputs, noise = random_inputs(model, BATCH, 3, seed=7)
        state = on_meta.init_state(BATCH, meta)
        reset, active = torch.tensor([True, False, False, True]), torch.tensor([True, True, False, True])
        for s in range(3):
            step = {k: v.to(meta) for k, v in step_inputs(model, inputs, s).items()}
            outputs, state = on_meta.step(step, state, noise[:, s].to(meta), reset.to(meta), active.to(meta))
        assert all(v.device == meta for v in [*outputs.values(), *state.values()])

    @pytest.mark.slow
    def test_onnx_export_matches_onnx_runtime_and_tensorrt_would_parse_it(
        self, model: StreamingGenerator, tmp_path: Path
    ) -> None:
        if self.onnx_parity_covered_by:
            pytest.skip(f"ONNX parity is checked on {self.onnx_parity_covered_by}, whose graph has all of this one's")
        pytest.importorskip("onnxruntime", reason="ONNX Runtime is not installed")
        from emostream.engines.onnx_backend import OnnxBackend
        from emostream.engines.onnx_export import export_step_onnx
        from emostream.engines.parity import streamed_parity
        from emostream.engines.tensorrt_ops import check_graph

        graph = export_step_onnx(model, tmp_path / "step.onnx")
        operators = check_graph(graph)  # on the same export: an export takes seconds
        assert operators.ok, operators.summary()
        # A batch size the export never saw, hundreds of steps of carried state, mixed reset/active masks.
        report = streamed_parity(OnnxBackend(model, graph), n_steps=4 * N_STEPS, batch=3, seed=4)
        print(report.summary())
        assert report.worst < ONNX_TOLERANCE, report.summary()
