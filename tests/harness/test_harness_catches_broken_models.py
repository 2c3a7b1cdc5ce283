"""The harness must fail on models that break the contract, or its passes would mean nothing."""

from dataclasses import replace

import pytest
import torch
from torch import Tensor

from emostream.runtime.models.conv_stack import CausalConvStack, ConvStackConfig
from emostream.runtime.step import TensorDict, apply_reset, zero_inactive
from tests.harness.step_contract import StepContractSuite


class UnderstatesLookahead(CausalConvStack):
    """Waits two frames and uses that audio, but declares no lookahead."""

    def __init__(self) -> None:
        super().__init__(ConvStackConfig(lookahead_frames=2))
        self.spec = replace(self.spec, lookahead_inputs=0)


class AdvancesIdleSlots(CausalConvStack):
    """Forgets the active mask for its state."""

    def step(self, inputs: TensorDict, state: TensorDict, noise: Tensor, reset: Tensor, active: Tensor):  # type: ignore[no-untyped-def]
        everyone = torch.ones_like(active)
        outputs, new_state = super().step(inputs, state, noise, reset, everyone)
        return zero_inactive(outputs, active), new_state


class MixesSlots(CausalConvStack):
    """Normalises the features across the batch, so one slot's input moves the others."""

    def step(self, inputs: TensorDict, state: TensorDict, noise: Tensor, reset: Tensor, active: Tensor):  # type: ignore[no-untyped-def]
        features = inputs["features"] - inputs["features"].mean(dim=0, keepdim=True)
        return super().step({"features": features}, state, noise, reset, active)


class IgnoresReset(CausalConvStack):
    def step(self, inputs: TensorDict, state: TensorDict, noise: Tensor, reset: Tensor, active: Tensor):  # type: ignore[no-untyped-def]
        return super().step(inputs, state, noise, torch.zeros_like(reset), active)


class OfflinePathDiffers(CausalConvStack):
    def forward_sequence(self, inputs: TensorDict, noise: Tensor) -> TensorDict:
        return {k: v * 1.001 for k, v in super().forward_sequence(inputs, noise).items()}


class MakesCpuTensors(CausalConvStack):
    """Resets slots to a state made on the CPU, whatever device the step runs on (a real bug, once)."""

    def step(self, inputs: TensorDict, state: TensorDict, noise: Tensor, reset: Tensor, active: Tensor):  # type: ignore[no-untyped-def]
        state = apply_reset(state, self.init_state(reset.shape[0]), reset)
        return super().step(inputs, state, noise, reset, active)


def run(check: str, model: CausalConvStack, tmp_path: object = None) -> None:
    torch.manual_seed(0)
    suite = StepContractSuite()
    getattr(suite, check)(model.eval())


@pytest.mark.parametrize(
    ("model", "check"),
    [
        (UnderstatesLookahead(), "test_frames_ignore_input_past_the_lookahead"),
        (AdvancesIdleSlots(), "test_reset_and_idle_slots_leave_the_others_bit_identical"),
        (MixesSlots(), "test_reset_and_idle_slots_leave_the_others_bit_identical"),
        (IgnoresReset(), "test_reset_and_idle_slots_leave_the_others_bit_identical"),
        (OfflinePathDiffers(), "test_chunked_streaming_equals_offline"),
    ],
    ids=lambda x: type(x).__name__ if not isinstance(x, str) else x,
)
def test_a_broken_model_fails_its_check(model: CausalConvStack, check: str) -> None:
    with pytest.raises(AssertionError):
        run(check, model)


def test_a_step_that_makes_cpu_tensors_fails_the_device_check() -> None:
    with pytest.raises(RuntimeError, match="device"):
        run("test_a_step_stays_on_the_device_of_its_inputs", MakesCpuTensors())


def test_a_correct_model_passes_the_same_checks() -> None:
    for check in (
        "test_a_step_stays_on_the_device_of_its_inputs",
        "test_frames_ignore_input_past_the_lookahead",
        "test_reset_and_idle_slots_leave_the_others_bit_identical",
        "test_chunked_streaming_equals_offline",
    ):
        run(check, CausalConvStack())


def test_reset_helper_restores_initial_state_only_where_asked() -> None:
    state = {"x": torch.ones(3, 2)}
    out = apply_reset(state, {"x": torch.zeros(3, 2)}, torch.tensor([False, True, False]))
    assert out["x"].tolist() == [[1, 1], [0, 0], [1, 1]]
